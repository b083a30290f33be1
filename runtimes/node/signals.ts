// SIGINT/SIGTERM through Node's `process` (Bun implements it too): the CliHost's onSignal.
export function onProcessSignal(handler: (signal: string) => void): () => void {
  const h = (sig: NodeJS.Signals) => handler(sig);
  process.on("SIGINT", h);
  process.on("SIGTERM", h);
  return () => {
    process.off("SIGINT", h);
    process.off("SIGTERM", h);
  };
}
