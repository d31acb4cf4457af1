/**
 * The base of every error the SDK throws on purpose.
 *
 * Why a base class: at the component boundary an SDK error's message is already the text
 * an operator should read (it mirrors the Rust SDK's `Display`), while any other error is
 * an author's bug and keeps its JS name (`TypeError: ...`) so it is recognisable as one.
 * `kind` names the Rust enum variant, so tests and callers can branch without parsing text.
 */
export class StratboxError extends Error {
  constructor(kind, message, detail = undefined) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
    if (detail !== undefined) this.detail = detail;
  }
}

/** The text a thrown value becomes when it crosses the WIT boundary as an error string. */
export function errorText(e) {
  if (e instanceof StratboxError) return e.message;
  if (e instanceof Error) {
    return e.name === 'Error' ? e.message : `${e.name}: ${e.message}`;
  }
  try {
    return String(e);
  } catch {
    return 'a value that cannot be shown was thrown';
  }
}
