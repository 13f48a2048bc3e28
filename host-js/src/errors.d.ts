export declare class EdgeSlmError extends Error {
  /** The WIT error code, e.g. "invalid-schema" (docs/errors.md), or "instance-trapped". */
  readonly code: string;
  readonly detail: unknown;
}
export declare class ModelLoadError extends EdgeSlmError {}
export declare class ContextOverflowError extends EdgeSlmError {
  readonly detail: { needed: number; limit: number };
}
export declare class InvalidOptionError extends EdgeSlmError {}
export declare class InvalidLabelsError extends EdgeSlmError {}
export declare class InvalidConstraintError extends EdgeSlmError {}
export declare class ConstraintUnsatisfiableError extends EdgeSlmError {}
export declare class OutputTruncatedError extends EdgeSlmError {
  readonly detail: number;
}
export declare class InstanceTrappedError extends EdgeSlmError {}
export declare function fromWit(err: { code: string; message: string; detail?: { tag: string; val: unknown } }): EdgeSlmError;
