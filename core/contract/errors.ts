/** The API error envelope (spec §1.1) and helpers to branch on status and error_code. */
import { z } from "zod";

export const ApiErrorBodySchema = z.looseObject({
  type: z.literal("error"),
  error: z.looseObject({
    type: z.string(),
    message: z.string(),
    details: z.looseObject({ error_code: z.string().optional() }).nullable().optional(),
  }),
  request_id: z.string().nullable().optional(),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBodySchema>;

/** "Fatal 4xx" as the helpers define it: any 4xx but 408, 409 and 429. */
export function isFatal4xx(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429;
}
