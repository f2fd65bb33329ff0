/**
 * The one error type of lmsteer. `code` is stable (tests and the server match on it), `message` names the
 * file/field/value at fault, `hint` says what to do about it. The CLI prints message + hint and exits 2.
 */
export type ErrorCode =
  | 'BAD_ARGUMENT' // a flag, option or API argument is invalid
  | 'BAD_FILE' // a file exists but its bytes are not what its format promises
  | 'NOT_FOUND' // a file, model, tensor, steer or slot that was asked for does not exist
  | 'SHAPE_MISMATCH' // tensors or configs whose shapes disagree
  | 'UNSUPPORTED' // a valid input this version cannot handle (model_type, dtype, …)
  | 'OFFLINE' // a download was needed but the network or hub is unavailable
  | 'NETWORK' // a download failed
  | 'BAD_DATA' // a dataset or prompt file is malformed
  | 'MODEL_MISMATCH' // a steer trained for another base model
  | 'LIMIT' // a request beyond a configured limit
  | 'FORBIDDEN' // a request the server's access policy refuses (host, origin, a path outside allowed folders)
  | 'CANCELLED'; // work stopped by the user or a client

export class LmSteerError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  constructor(code: ErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LmSteerError';
    this.code = code;
    this.hint = hint;
  }
}

/** Throw a BAD_ARGUMENT error unless `cond` holds. */
export function check(cond: unknown, message: string, hint?: string, code: ErrorCode = 'BAD_ARGUMENT'): asserts cond {
  if (!cond) throw new LmSteerError(code, message, hint);
}
