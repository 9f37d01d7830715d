/**
 * Password policy for registration and password changes, after NIST SP 800-63B: a length floor,
 * a block-list of leaked passwords, nothing guessable from the account, no trivial patterns — and no
 * composition rules ("one upper, one digit, one symbol"), which only push people to `Password1!`.
 */
import { COMMON_PASSWORDS } from './common-passwords.ts';

export const MIN_PASSWORD_LENGTH = 10;
/** Upper bound on what we hand to argon2; longer input is refused before any other check. */
export const MAX_PASSWORD_LENGTH = 256;

export type PasswordProblemCode = 'too_short' | 'too_long' | 'common' | 'contains_username' | 'contains_email' | 'sequence';

/** One reason a password is refused: a stable `code` and a message telling the researcher what to do. */
export interface PasswordProblem {
  code: PasswordProblemCode;
  message: string;
}

export interface PasswordContext {
  username: string;
  email: string;
}

/** Username or email local part shorter than this is too short to look for inside a password. */
const MIN_IDENTIFIER_LENGTH = 3;
/** A stem (password minus trailing digits/symbols) shorter than this is not judged as a sequence. */
const MIN_SEQUENCE_STEM_LENGTH = 4;

const MESSAGES: Record<PasswordProblemCode, string> = {
  too_short: `Use at least ${MIN_PASSWORD_LENGTH} characters; a passphrase of several words is easiest to remember.`,
  too_long: `Use at most ${MAX_PASSWORD_LENGTH} characters; a passphrase of a few words is plenty.`,
  common:
    'This password is on lists of leaked passwords that attackers try first, even with digits or symbols added at the end; choose something else, such as several unrelated words.',
  contains_username: 'Leave your username out of your password; it is the first thing an attacker tries.',
  contains_email: 'Leave your email address, and the part before the @, out of your password.',
  sequence:
    'Avoid repeated characters and runs along the keyboard, the alphabet or the digits; several unrelated words are far harder to guess.',
};

/** Runs that count as "simple sequences", read forwards or backwards and wrapping around. */
const SEQUENCES = [
  'abcdefghijklmnopqrstuvwxyz',
  '0123456789',
  'qwertyuiopasdfghjklzxcvbnm',
  '1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/',
  '!@#$%^&*()',
];

const TRAILING_STRIPPABLE = /[\p{N}\p{P}\p{S}\s]$/u;

/**
 * Check a password against the policy. Returns every problem found, in a fixed order; an empty array
 * means the password is acceptable. Lengths count Unicode code points, comparisons ignore case, and
 * no message ever repeats the password, username or email.
 *
 * @example
 * checkPassword('Password123!', { username: 'ada', email: 'ada@example.org' })
 * // → [{ code: 'common', message: 'This password is on lists of leaked passwords …' }]
 */
export function checkPassword(password: string, context: PasswordContext): PasswordProblem[] {
  const length = codePoints(password);
  // Refuse oversized input outright, so hostile input costs no further work.
  if (length > MAX_PASSWORD_LENGTH) return [problem('too_long')];

  const problems: PasswordProblem[] = [];
  const lower = password.toLowerCase();
  if (length < MIN_PASSWORD_LENGTH) problems.push(problem('too_short'));
  if (isCommon(lower)) problems.push(problem('common'));
  if (containsUsername(lower, context.username)) problems.push(problem('contains_username'));
  if (containsEmail(lower, context.email)) problems.push(problem('contains_email'));
  const stem = strippedForms(lower).at(-1) ?? lower;
  if (isSequence(lower) || (codePoints(stem) >= MIN_SEQUENCE_STEM_LENGTH && isSequence(stem))) {
    problems.push(problem('sequence'));
  }
  return problems;
}

function problem(code: PasswordProblemCode): PasswordProblem {
  return { code, message: MESSAGES[code] };
}

function codePoints(text: string): number {
  return [...text].length;
}

/** `text`, then `text` with one, two, … trailing digits/punctuation/symbols removed (never empty). */
function strippedForms(text: string): string[] {
  const forms = [text];
  let rest = text;
  for (let match = TRAILING_STRIPPABLE.exec(rest); match !== null && match.index > 0; match = TRAILING_STRIPPABLE.exec(rest)) {
    rest = rest.slice(0, match.index);
    forms.push(rest);
  }
  return forms;
}

/** Every `unit` with `text === unit.repeat(k)` for some k ≥ 2. */
function repeatedUnits(text: string): string[] {
  const units: string[] = [];
  for (let size = 1; size <= text.length / 2; size += 1) {
    const unit = text.slice(0, size);
    if (text.length % size === 0 && unit.repeat(text.length / size) === text) units.push(unit);
  }
  return units;
}

const isListed = (text: string): boolean => strippedForms(text).some((form) => COMMON_PASSWORDS.has(form));

/** Listed as is, minus trailing digits/symbols, or as a listed entry repeated (`monkeymonkey1`). */
function isCommon(lower: string): boolean {
  return strippedForms(lower).some((form) => COMMON_PASSWORDS.has(form) || repeatedUnits(form).some(isListed));
}

function containsUsername(lower: string, username: string): boolean {
  const name = username.trim().toLowerCase();
  return codePoints(name) >= MIN_IDENTIFIER_LENGTH && lower.includes(name);
}

function containsEmail(lower: string, email: string): boolean {
  const address = email.trim().toLowerCase();
  if (address === '') return false;
  const at = address.lastIndexOf('@');
  const local = at > 0 ? address.slice(0, at) : address;
  return lower.includes(address) || (codePoints(local) >= MIN_IDENTIFIER_LENGTH && lower.includes(local));
}

/** One character repeated, or a stretch of one of `SEQUENCES` (either direction, wrapping). */
function isSequence(lower: string): boolean {
  const chars = [...lower];
  if (chars.length === 0) return false;
  if (chars.every((char) => char === chars[0])) return true;
  return SEQUENCES.some((sequence) =>
    [sequence, [...sequence].reverse().join('')].some((run) =>
      run.repeat(Math.ceil(lower.length / run.length) + 1).includes(lower),
    ),
  );
}
