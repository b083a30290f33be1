// The parent worker of the workers-loader tier: runs inside workerd (started by loader-host.ts
// through Miniflare) and is the only code there with the LOADER binding. Shipped as text.
//
//   POST /run   {token, id, compatibilityDate, modules}: load a dynamic worker with those modules
//               and fetch it once (which runs the snippet); answers {ok, detail: the guest's
//               last batch of messages} or {ok:false, error}
//               when the worker fails to load or throws outside the snippet.
//   GET  /ping  liveness: workerd runs every isolate on one thread, so a CPU-bound guest makes
//               this hang; the host uses that to decide whether to restart workerd.
//
// The dynamic worker gets exactly two ways out, both tagged with its channel token:
//   env.HOST        the host's service binding, for protocol messages (guest → host)
//   globalOutbound  GuestOutbound below: its own fetch() (and connect()) never reaches a network;
//                   the request goes to the host, which answers it with the session's outbound
//                   handler, as it answers the guest's `fetch` calls.
export const PARENT_WORKER_SCRIPT = `
import { WorkerEntrypoint } from "cloudflare:workers";

export class GuestOutbound extends WorkerEntrypoint {
  async fetch(request) {
    const headers = new Headers();
    headers.set("x-deft-token", this.ctx.props.token);
    headers.set("x-deft-url", request.url);
    headers.set("x-deft-method", request.method);
    headers.set("x-deft-headers", JSON.stringify([...request.headers]));
    const body = request.body ? await request.arrayBuffer() : undefined;
    return this.env.HOST.fetch("http://host/outbound", { method: "POST", headers, body });
  }
}

const parent = {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/ping") return new Response("pong");
    const { token, id, compatibilityDate, mainModule, modules } = await request.json();
    const worker = env.LOADER.get(id, () => ({
      compatibilityDate,
      mainModule,
      modules,
      env: { HOST: env.HOST, TOKEN: token },
      globalOutbound: ctx.exports.GuestOutbound({ props: { token } }), // never left undefined
    }));
    try {
      const res = await worker.getEntrypoint().fetch("http://guest/run");
      return Response.json({ ok: true, detail: await res.text() }); // detail: the guest's last batch (JSON)
    } catch (e) {
      return Response.json({ ok: false, error: { name: (e && e.name) || "Error", message: String((e && e.message) || e) } });
    }
  },
};
export { parent as default };
`;
