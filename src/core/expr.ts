// Route `vars` expressions with lua-resty-expr's semantics (the library APISIX
// uses), compiled once into closures so that evaluating a request allocates
// nothing.
//
//   [var, op, value]             one comparison
//   [var, '!', op, value]        the same, negated
//   [[...], [...]]               implicit AND of the rules in the list
//   ['OR', [...], [...], ...]    AND, OR, !AND, !OR (any case), nestable
//
// Values compare as they do in Lua: a string never equals a number, except
// where an operator converts (`==`/`~=` against a number, and `>` `>=` `<` `<=`).
// Nginx-style variables should therefore be looked up as strings.

import { parseCidrList } from './cidr';
import { logger } from './log';

export type VarValue = string | number | boolean | string[] | null | undefined;
export type VarLookup = (name: string) => VarValue;
export type CompiledExpr = (vars: VarLookup) => boolean;

/** A malformed expression; the message is worded as lua-resty-expr words it. */
export class ExprError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExprError';
  }
}

const log = logger('expr');

const LOGIC_OPERATORS = new Set(['AND', 'OR', '!AND', '!OR']);
const COMPARISON_OPERATORS = new Set(['==', '~=', '>', '>=', '<', '<=', '~~', '~*', 'in', 'has', 'ipmatch']);

const alwaysTrue: CompiledExpr = () => true;

/** Compiles a `vars` expression; throws ExprError for a malformed one. An empty list matches everything. */
export function compileExpr(expr: unknown): CompiledExpr {
  if (expr === undefined || expr === null) throw new ExprError('missing argument rule');
  if (!Array.isArray(expr)) throw new ExprError('rule should be wrapped inside brackets');
  if (expr.length === 0) return alwaysTrue;
  const head: unknown = expr[0];
  if (!isTable(head) && !(typeof head === 'string' && LOGIC_OPERATORS.has(head.toUpperCase()))) {
    throw new ExprError('rule should be wrapped inside brackets');
  }
  return compileRule(expr);
}

/** The error message for a malformed expression, or undefined when it compiles. */
export function validateExpr(expr: unknown): string | undefined {
  try {
    compileExpr(expr);
    return undefined;
  } catch (err) {
    if (err instanceof ExprError) return err.message;
    throw err;
  }
}

/** A Lua table: a JSON array or object (an object is a table of length 0). */
function isTable(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function compileRule(rule: unknown): CompiledExpr {
  if (!isTable(rule)) throw new ExprError('invalid expression');
  if (!Array.isArray(rule) || rule.length === 0) throw new ExprError('rule too short');

  const head: unknown = rule[0];
  if (isTable(head)) return combineAll(rule.map(compileRule));

  const logicOperator = typeof head === 'string' ? head.toUpperCase() : '';
  if (LOGIC_OPERATORS.has(logicOperator)) {
    // lua-resty-expr wants a logic operator followed by at least two rules.
    if (rule.length <= 2) throw new ExprError('rule too short');
    const children = rule.slice(1).map(compileRule);
    switch (logicOperator) {
      case 'AND':
        return combineAll(children);
      case 'OR':
        return combineAny(children);
      case '!AND': {
        const all = combineAll(children);
        return (vars) => !all(vars);
      }
      default: {
        const any = combineAny(children);
        return (vars) => !any(vars);
      }
    }
  }
  return compileComparison(rule);
}

function combineAll(rules: CompiledExpr[]): CompiledExpr {
  if (rules.length === 1) return rules[0];
  return (vars) => {
    for (let i = 0; i < rules.length; i++) {
      if (!rules[i](vars)) return false;
    }
    return true;
  };
}

function combineAny(rules: CompiledExpr[]): CompiledExpr {
  return (vars) => {
    for (let i = 0; i < rules.length; i++) {
      if (rules[i](vars)) return true;
    }
    return false;
  };
}

type Test = (left: VarValue) => boolean;

function compileComparison(rule: unknown[]): CompiledExpr {
  let name: unknown;
  let operator: unknown;
  let value: unknown;
  let negated = false;
  if (rule.length === 4) {
    if (rule[1] !== '!') throw new ExprError("bad 'not' expression");
    negated = true;
    [name, , operator, value] = rule;
  } else {
    [name, operator, value] = rule;
  }

  // lua-resty-expr lower-cases the operator with string.lower, which also
  // turns a number into a string and fails on anything else.
  let op: string | undefined;
  if (operator !== undefined) {
    if (typeof operator !== 'string' && typeof operator !== 'number') throw new ExprError('invalid expression');
    op = String(operator).toLowerCase();
  }
  if (value === undefined && (op === undefined || !COMPARISON_OPERATORS.has(op))) {
    // Two-element form `[var, value]`: kept by lua-resty-expr for compatibility,
    // it means `==` against the (already lower-cased) second element.
    if (op === undefined) throw new ExprError('invalid expression');
    value = op;
    op = '==';
  }
  if (name === undefined || name === null || op === undefined) throw new ExprError('invalid expression');
  if (!COMPARISON_OPERATORS.has(op)) throw new ExprError(`invalid operator '${op}'`);
  if (isTable(name) || typeof name === 'boolean') throw new ExprError('invalid expression');

  const variable = String(name);
  const test = compileTest(op, value);
  if (negated) return (vars) => !test(vars(variable));
  return (vars) => test(vars(variable));
}

function compileTest(op: string, value: unknown): Test {
  // JSON null on the right means "the variable is absent".
  const right = value === null ? undefined : value;
  switch (op) {
    case '==':
      return equalsTest(right);
    case '~=': {
      const equals = equalsTest(right);
      return (left) => !equals(left);
    }
    case '>':
    case '>=':
    case '<':
    case '<=':
      return numericTest(op, right);
    case '~~':
    case '~*':
      return regexTest(right, op === '~*');
    case 'in':
      return inTest(right);
    case 'has':
      return (left) => {
        if (!Array.isArray(left)) return false;
        for (let i = 0; i < left.length; i++) {
          if (left[i] === right) return true;
        }
        return false;
      };
    default:
      return ipMatchTest(value);
  }
}

function equalsTest(right: unknown): Test {
  if (right === undefined) return (left) => left === undefined || left === null;
  if (typeof right === 'number') return (left) => toLuaNumber(left) === right;
  if (typeof right === 'string' || typeof right === 'boolean') return (left) => left === right;
  // A Lua table is equal only to itself, never to a variable's value.
  return () => false;
}

function numericTest(op: string, value: unknown): Test {
  const right = toLuaNumber(value);
  if (right === undefined) return () => false;
  switch (op) {
    case '>':
      return (left) => {
        const number = toLuaNumber(left);
        return number !== undefined && number > right;
      };
    case '>=':
      return (left) => {
        const number = toLuaNumber(left);
        return number !== undefined && number >= right;
      };
    case '<':
      return (left) => {
        const number = toLuaNumber(left);
        return number !== undefined && number < right;
      };
    default:
      return (left) => {
        const number = toLuaNumber(left);
        return number !== undefined && number <= right;
      };
  }
}

function regexTest(value: unknown, caseless: boolean): Test {
  if (typeof value !== 'string' && typeof value !== 'number') return () => false;
  const regex = pcreToRegExp(String(value), caseless);
  // APISIX accepts a pattern PCRE cannot compile and fails the match at run
  // time; a pattern JavaScript cannot express is treated the same way.
  if (!regex) return () => false;
  return (left) => {
    if (typeof left === 'string') return regex.test(left);
    if (typeof left === 'number') return regex.test(String(left));
    return false;
  };
}

function inTest(value: unknown): Test {
  if (!Array.isArray(value)) return () => false;
  const candidates: unknown[] = value.slice();
  return (left) => {
    if (left === undefined || left === null) return false;
    for (let i = 0; i < candidates.length; i++) {
      if (candidates[i] === left) return true;
    }
    return false;
  };
}

function ipMatchTest(value: unknown): Test {
  if (value === undefined || value === null || value === false || value === '')
    throw new ExprError('invalid ip address');
  const list = Array.isArray(value) ? value : isTable(value) ? [] : [value];
  if (list.length === 0) throw new ExprError('invalid ip address');
  for (const entry of list) {
    if (typeof entry !== 'string') throw new ExprError(`invalid ip address: ${JSON.stringify(entry)}`);
  }
  let matcher;
  try {
    matcher = parseCidrList(list as string[]);
  } catch (err) {
    throw new ExprError((err as Error).message);
  }
  return (left) => typeof left === 'string' && matcher.match(left);
}

// Lua's tonumber for strings: optional blanks and sign around a decimal
// (with fraction and exponent) or a hexadecimal integer.
const LUA_DECIMAL = /^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$/;
const LUA_HEX = /^\s*([-+]?)0[xX]([0-9a-fA-F]+)\s*$/;

/** Lua's tonumber: a number stays, a numeric string converts, anything else is undefined. */
export function toLuaNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  if (LUA_DECIMAL.test(value)) return Number(value);
  const hex = LUA_HEX.exec(value);
  if (!hex) return undefined;
  const magnitude = parseInt(hex[2], 16);
  return hex[1] === '-' ? -magnitude : magnitude;
}

/**
 * A JavaScript RegExp for a PCRE pattern as ngx.re.find runs it (no anchoring,
 * `i` for `~*`). Translates the PCRE spellings JavaScript lacks: leading
 * inline flags `(?i)` `(?s)` `(?m)`, `\A`, `\z`, `\Z` and `(?P<name>`.
 * Returns undefined when the pattern cannot be compiled.
 */
export function pcreToRegExp(pattern: string, caseless: boolean): RegExp | undefined {
  let flags = caseless ? 'i' : '';
  let source = pattern;
  const inline = /^\(\?([imsx]+)\)/.exec(source);
  if (inline) {
    if (inline[1].includes('x')) return invalidPattern(pattern, 'extended mode (?x) is not supported');
    for (const flag of inline[1]) {
      if (!flags.includes(flag)) flags += flag;
    }
    source = source.slice(inline[0].length);
  }
  let translated = '';
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if (char === '\\' && i + 1 < source.length) {
      const next = source[i + 1];
      if (next === 'A') translated += '(?<![\\s\\S])';
      else if (next === 'z') translated += '(?![\\s\\S])';
      else if (next === 'Z') translated += '(?=\\n?(?![\\s\\S]))';
      else translated += char + next;
      i++;
    } else if (char === '(' && source.startsWith('(?P<', i)) {
      translated += '(?<';
      i += 3;
    } else {
      translated += char;
    }
  }
  try {
    return new RegExp(translated, flags);
  } catch (err) {
    return invalidPattern(pattern, (err as Error).message);
  }
}

function invalidPattern(pattern: string, reason: string): undefined {
  log.warn('regular expression will never match', { pattern, reason });
  return undefined;
}
