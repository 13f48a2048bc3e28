// Typed errors: one class per group of the engine's error codes, each with the WIT
// `error-code` as `code`, the engine's message, and the numbers it carries as `detail`.

export class EdgeSlmError extends Error {
  /** @param {string} code @param {string} message @param {unknown} [detail] */
  constructor(code, message, detail) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.detail = detail;
  }
}
/** The model file cannot be used: not found, not GGUF, corrupt, unsupported, unreadable. */
export class ModelLoadError extends EdgeSlmError {}
/** Prompt plus max-tokens exceed the context window; `detail` is {needed, limit}. */
export class ContextOverflowError extends EdgeSlmError {}
/** An option outside its domain (or an empty prompt). */
export class InvalidOptionError extends EdgeSlmError {}
/** A label set classify cannot use. */
export class InvalidLabelsError extends EdgeSlmError {}
/** A constraint that cannot be compiled: invalid or unsupported schema, bad regex or grammar. */
export class InvalidConstraintError extends EdgeSlmError {}
/** No output can satisfy the constraint. */
export class ConstraintUnsatisfiableError extends EdgeSlmError {}
/** max-tokens ran out before the constrained output was complete; `detail` is max-tokens. */
export class OutputTruncatedError extends EdgeSlmError {}
/** The component trapped: this model instance is gone; load the model again. */
export class InstanceTrappedError extends EdgeSlmError {}

// The class for each code of the engine's error table (docs/errors.md); the message is the
// engine's own, passed through whole by the component.
const CLASSES = {
  "file-not-found": ModelLoadError,
  "not-gguf": ModelLoadError,
  "unsupported-architecture": ModelLoadError,
  "unsupported-tensor-type": ModelLoadError,
  "corrupt-file": ModelLoadError,
  io: ModelLoadError,
  "context-overflow": ContextOverflowError,
  "invalid-option": InvalidOptionError,
  "invalid-labels": InvalidLabelsError,
  "invalid-schema": InvalidConstraintError,
  "unsupported-schema": InvalidConstraintError,
  "invalid-regex": InvalidConstraintError,
  "invalid-grammar": InvalidConstraintError,
  "constraint-unsatisfiable": ConstraintUnsatisfiableError,
  "output-truncated": OutputTruncatedError,
};

/** The typed error for a WIT `error` record ({code, message, detail}); `detail` is the
 *  numbers some codes carry ({needed, limit} for context-overflow, max-tokens for output-truncated). */
export function fromWit(err) {
  const Class = CLASSES[err.code] ?? EdgeSlmError;
  return new Class(err.code, err.message, err.detail?.val);
}

/**
 * What a call into the component threw, as the error to throw to the caller: a WIT error
 * becomes its typed error; a trap marks `model` dead (every later call throws it).
 */
export function fromComponent(model, e) {
  if (e && Object.prototype.hasOwnProperty.call(e, "payload") && e.payload?.code) return fromWit(e.payload);
  if (e instanceof WebAssembly.RuntimeError) {
    model.trapped = new InstanceTrappedError("instance-trapped", `the component trapped (${e.message}); load the model again`);
    return model.trapped;
  }
  return e;
}
