import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setLogLevel } from '../../src/core/log';
import { compileExpr, ExprError, pcreToRegExp, toLuaNumber, validateExpr, type VarValue } from '../../src/core/expr';

// Patterns that cannot compile are logged as warnings; keep the test output clean.
setLogLevel('error');

function lookup(vars: Record<string, VarValue>) {
  return (name: string): VarValue => vars[name];
}

function evaluate(expr: unknown, vars: Record<string, VarValue>): boolean {
  return compileExpr(expr)(lookup(vars));
}

function one(name: string, op: string, value: unknown, vars: Record<string, VarValue>): boolean {
  return evaluate([[name, op, value]], vars);
}

describe('vars expressions: operators', () => {
  it('== compares strings exactly and never a string with a number unless the right side is a number', () => {
    assert.equal(one('arg_a', '==', 'x', { arg_a: 'x' }), true);
    assert.equal(one('arg_a', '==', 'x', { arg_a: 'X' }), false);
    assert.equal(one('arg_a', '==', 'x', {}), false);
    assert.equal(one('arg_a', '==', '1', { arg_a: 1 }), false);
    assert.equal(one('arg_a', '==', 1, { arg_a: '1' }), true);
    assert.equal(one('arg_a', '==', 1, { arg_a: '1.0' }), true);
    assert.equal(one('arg_a', '==', 16, { arg_a: '0x10' }), true);
    assert.equal(one('arg_a', '==', 1, { arg_a: ' 1 ' }), true);
    assert.equal(one('arg_a', '==', 0, { arg_a: '' }), false);
    assert.equal(one('arg_a', '==', 1, { arg_a: 'one' }), false);
    assert.equal(one('arg_a', '==', 1, {}), false);
    assert.equal(one('arg_a', '==', true, { arg_a: true }), true);
    assert.equal(one('arg_a', '==', ['x'], { arg_a: 'x' }), false);
  });

  it('== null and ~= null test whether the variable is absent', () => {
    assert.equal(one('arg_a', '==', null, {}), true);
    assert.equal(one('arg_a', '==', null, { arg_a: null }), true);
    assert.equal(one('arg_a', '==', null, { arg_a: '' }), false);
    assert.equal(one('arg_a', '~=', null, { arg_a: 'x' }), true);
    assert.equal(one('arg_a', '~=', null, {}), false);
  });

  it('~= is the negation of ==, numeric when the right side is a number', () => {
    assert.equal(one('arg_a', '~=', 'x', { arg_a: 'y' }), true);
    assert.equal(one('arg_a', '~=', 'x', { arg_a: 'x' }), false);
    assert.equal(one('arg_a', '~=', 'x', {}), true);
    assert.equal(one('arg_a', '~=', 2, { arg_a: '2' }), false);
    assert.equal(one('arg_a', '~=', 2, { arg_a: 'two' }), true);
  });

  it('> >= < <= convert both sides to numbers and fail when either does not convert', () => {
    const vars = { arg_n: '10' };
    assert.equal(one('arg_n', '>', 9, vars), true);
    assert.equal(one('arg_n', '>', 10, vars), false);
    assert.equal(one('arg_n', '>=', 10, vars), true);
    assert.equal(one('arg_n', '<', 11, vars), true);
    assert.equal(one('arg_n', '<', 10, vars), false);
    assert.equal(one('arg_n', '<=', 10, vars), true);
    assert.equal(one('arg_n', '>', '9', vars), true, 'a numeric string on the right converts');
    assert.equal(one('arg_n', '>', 'nine', vars), false);
    assert.equal(one('arg_n', '>', 9, { arg_n: 'ten' }), false);
    assert.equal(one('arg_n', '<', 9, {}), false);
    assert.equal(one('arg_n', '>=', -1.5, { arg_n: '-1.5' }), true);
    assert.equal(one('arg_n', '>', 1000, { arg_n: '1e4' }), true);
    assert.equal(one('arg_n', '>', 0, { arg_n: 5 }), true);
    assert.equal(one('arg_n', '>', 0, { arg_n: ['5'] }), false);
  });

  it('~~ is a regular expression search, ~* the same ignoring case', () => {
    assert.equal(one('uri', '~~', '^/api/v[0-9]+/', { uri: '/api/v2/users' }), true);
    assert.equal(one('uri', '~~', '^/api/v[0-9]+/', { uri: '/API/v2/users' }), false);
    assert.equal(one('uri', '~*', '^/api/v[0-9]+/', { uri: '/API/v2/users' }), true);
    assert.equal(one('uri', '~~', 'users', { uri: '/api/users/1' }), true, 'unanchored like ngx.re.find');
    assert.equal(one('uri', '~~', '.', {}), false);
    assert.equal(one('arg_n', '~~', '^[0-9]+$', { arg_n: 42 }), true);
    assert.equal(one('arg_n', '~~', '^[0-9]+$', { arg_n: ['42'] }), false);
  });

  it('a regular expression JavaScript cannot compile never matches but does not fail validation', () => {
    const expr = [['uri', '~~', '(unclosed']];
    assert.equal(validateExpr(expr), undefined);
    assert.equal(evaluate(expr, { uri: '(unclosed' }), false);
  });

  it('translates PCRE spellings JavaScript lacks', () => {
    assert.equal(one('http_x', '~~', '(?i)^abc', { http_x: 'ABCD' }), true);
    assert.equal(one('uri', '~~', '\\A/a\\z', { uri: '/a' }), true);
    assert.equal(one('uri', '~~', '\\A/a\\z', { uri: '/a/b' }), false);
    assert.equal(one('uri', '~~', '/a\\Z', { uri: '/a\n' }), true);
    assert.equal(one('uri', '~~', '^/(?P<id>\\d+)$', { uri: '/12' }), true);
    assert.equal(one('uri', '~~', '\\\\A', { uri: '\\A' }), true, 'an escaped backslash is not \\A');
    assert.equal(pcreToRegExp('(?x) a b', false), undefined);
  });

  it('in is true when the variable equals an element of the array', () => {
    assert.equal(one('arg_id', 'in', ['1', '2'], { arg_id: '2' }), true);
    assert.equal(one('arg_id', 'in', ['1', '2'], { arg_id: '3' }), false);
    assert.equal(one('arg_id', 'in', [1, 2], { arg_id: '2' }), false, 'no string-number equality');
    assert.equal(one('arg_id', 'in', [1, 2], { arg_id: 2 }), true);
    assert.equal(one('arg_id', 'in', ['1'], {}), false);
    assert.equal(one('arg_id', 'in', [null], {}), false);
    assert.equal(one('arg_id', 'in', 'not-an-array', { arg_id: 'not-an-array' }), false);
  });

  it('has is true when the array variable contains the value', () => {
    assert.equal(one('roles', 'has', 'admin', { roles: ['user', 'admin'] }), true);
    assert.equal(one('roles', 'has', 'root', { roles: ['user', 'admin'] }), false);
    assert.equal(one('roles', 'has', 'admin', { roles: 'admin' }), false);
    assert.equal(one('roles', 'has', 'admin', {}), false);
  });

  it('ipmatch tests the variable against CIDR ranges and plain addresses', () => {
    const ranges = ['10.0.0.0/8', '192.168.1.1', '2001:db8::/32'];
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: '10.20.30.40' }), true);
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: '192.168.1.1' }), true);
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: '192.168.1.2' }), false);
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: '2001:db8:1::5' }), true);
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: '::ffff:10.0.0.1' }), true);
    assert.equal(one('remote_addr', 'ipmatch', ranges, { remote_addr: 'garbage' }), false);
    assert.equal(one('remote_addr', 'ipmatch', ranges, {}), false);
    assert.equal(one('remote_addr', 'ipmatch', '127.0.0.1', { remote_addr: '127.0.0.1' }), true, 'a single string');
  });

  it('operators are case-insensitive', () => {
    assert.equal(one('arg_id', 'IN', ['1'], { arg_id: '1' }), true);
    assert.equal(one('roles', 'HAS', 'a', { roles: ['a'] }), true);
    assert.equal(one('remote_addr', 'IPMatch', ['1.2.3.4'], { remote_addr: '1.2.3.4' }), true);
  });
});

describe('vars expressions: structure', () => {
  const vars = { arg_a: '1', arg_b: '2', http_x: 'yes' };

  it('an empty list matches everything', () => {
    assert.equal(evaluate([], {}), true);
  });

  it('a list of rules is an implicit AND', () => {
    assert.equal(
      evaluate(
        [
          ['arg_a', '==', '1'],
          ['arg_b', '==', '2'],
        ],
        vars,
      ),
      true,
    );
    assert.equal(
      evaluate(
        [
          ['arg_a', '==', '1'],
          ['arg_b', '==', '3'],
        ],
        vars,
      ),
      false,
    );
  });

  it('negates a rule with "!"', () => {
    assert.equal(evaluate([['arg_a', '!', '==', '1']], vars), false);
    assert.equal(evaluate([['arg_a', '!', '==', '2']], vars), true);
    assert.equal(evaluate([['arg_z', '!', '~~', '.']], vars), true);
    assert.equal(evaluate([['arg_z', '!', '>', 1]], vars), true, 'a failed conversion is false, negated true');
  });

  it('AND, OR, !AND, !OR heads in any case', () => {
    const yes = ['arg_a', '==', '1'];
    const no = ['arg_a', '==', '9'];
    assert.equal(evaluate(['AND', yes, yes], vars), true);
    assert.equal(evaluate(['and', yes, no], vars), false);
    assert.equal(evaluate(['OR', no, yes], vars), true);
    assert.equal(evaluate(['Or', no, no], vars), false);
    assert.equal(evaluate(['!AND', yes, no], vars), true);
    assert.equal(evaluate(['!and', yes, yes], vars), false);
    assert.equal(evaluate(['!OR', no, no], vars), true);
    assert.equal(evaluate(['!or', no, yes], vars), false);
  });

  it('nests logic heads and lists', () => {
    const expr = [
      'OR',
      ['AND', ['arg_a', '==', '1'], ['arg_b', '==', '9']],
      [
        ['http_x', '==', 'yes'],
        ['arg_b', '>', 1],
      ],
    ];
    assert.equal(evaluate(expr, vars), true);
    assert.equal(evaluate(expr, { ...vars, http_x: 'no' }), false);
    assert.equal(evaluate(expr, { ...vars, http_x: 'no', arg_b: '9' }), true);
    const deep = ['!OR', ['AND', ['arg_a', '==', '1'], ['!AND', ['arg_b', '==', '2'], ['http_x', '==', 'yes']]]];
    // a one-rule OR is too short for lua-resty-expr; wrap it to be valid
    assert.equal(validateExpr(deep), 'rule too short');
    const valid = [
      '!OR',
      ['AND', ['arg_a', '==', '1'], ['!AND', ['arg_b', '==', '2'], ['http_x', '==', 'yes']]],
      ['arg_a', '==', '0'],
    ];
    assert.equal(evaluate(valid, vars), true);
  });

  it('keeps the two-element compatibility form `[var, value]` meaning ==, lower-cased as lua-resty-expr does', () => {
    assert.equal(evaluate([['arg_a', '1']], vars), true);
    assert.equal(evaluate([['http_x', 'YES']], vars), true);
    assert.equal(evaluate([['arg_a', '==']], vars), false, 'an operator without value compares with nil');
    assert.equal(evaluate([['arg_z', '==']], vars), true);
  });

  it('reads only the first three elements of a longer rule, as lua-resty-expr does', () => {
    assert.equal(evaluate([['arg_a', '==', '1', 'ignored', 'too']], vars), true);
  });

  it('accepts lists nested in lists and a numeric pattern or variable name', () => {
    assert.equal(evaluate([[['arg_a', '==', '1'], [['arg_b', '==', '2']]]], vars), true);
    assert.equal(evaluate([['arg_b', '~~', 2]], vars), true);
    assert.equal(evaluate([[7, '==', 'seven']], { 7: 'seven' }), true);
  });

  it('evaluates logic heads lazily', () => {
    let looked = 0;
    const expr = compileExpr(['OR', ['arg_a', '==', '1'], ['arg_b', '==', '2']]);
    expr((name) => {
      looked++;
      return name === 'arg_a' ? '1' : undefined;
    });
    assert.equal(looked, 1);
  });
});

describe('vars expressions: errors', () => {
  const cases: [unknown, string][] = [
    [undefined, 'missing argument rule'],
    [null, 'missing argument rule'],
    ['arg_a', 'rule should be wrapped inside brackets'],
    [{ arg_a: 1 }, 'rule should be wrapped inside brackets'],
    [['arg_a', '==', '1'], 'rule should be wrapped inside brackets'],
    [[1, '==', '1'], 'rule should be wrapped inside brackets'],
    [[['arg_a', '=', '1']], "invalid operator '='"],
    [[['arg_a', 'EQ', '1']], "invalid operator 'eq'"],
    [[['arg_a', 5, '1']], "invalid operator '5'"],
    [[['arg_a', 'not', '==', '1']], "bad 'not' expression"],
    [[['arg_a']], 'invalid expression'],
    [[[null, '==', 'x']], 'invalid expression'],
    [[['arg_a', null, 'x']], 'invalid expression'],
    [[['arg_a', ['=='], 'x']], 'invalid expression'],
    [[[]], 'rule too short'],
    [[['arg_a', '==', '1'], {}], 'rule too short'],
    [[['arg_a', '==', '1'], 'x'], 'invalid expression'],
    [['OR'], 'rule too short'],
    [['OR', ['arg_a', '==', '1']], 'rule too short'],
    [['AND', ['arg_a', '==', '1'], ['arg_b', '~', '1']], "invalid operator '~'"],
    [[['remote_addr', 'ipmatch', '']], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', []]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', null]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', ['10.0.0.0/33']]], 'invalid ip address: 10.0.0.0/33'],
    [[['remote_addr', 'ipmatch', ['1.2.3.4', 'nope']]], 'invalid ip address: nope'],
  ];
  for (const [expr, message] of cases) {
    it(`${JSON.stringify(expr)} -> ${message}`, () => {
      assert.equal(validateExpr(expr), message);
      assert.throws(
        () => compileExpr(expr),
        (err: unknown) => err instanceof ExprError && err.message === message,
      );
    });
  }

  it('validateExpr returns undefined for a valid expression', () => {
    assert.equal(validateExpr([['arg_a', '==', '1']]), undefined);
    assert.equal(validateExpr([]), undefined);
    assert.equal(validateExpr(['OR', ['arg_a', '==', '1'], ['arg_a', '==', '2']]), undefined);
  });
});

describe('toLuaNumber', () => {
  it('converts the strings Lua tonumber accepts and refuses the ones it does not', () => {
    assert.equal(toLuaNumber('42'), 42);
    assert.equal(toLuaNumber(' -4.5 '), -4.5);
    assert.equal(toLuaNumber('.5'), 0.5);
    assert.equal(toLuaNumber('5.'), 5);
    assert.equal(toLuaNumber('1e3'), 1000);
    assert.equal(toLuaNumber('0x1F'), 31);
    assert.equal(toLuaNumber('-0x10'), -16);
    assert.equal(toLuaNumber(7), 7);
    for (const bad of ['', '  ', 'abc', '0b101', '0o7', 'Infinity', '1 2', '1e', true, null, undefined, ['1']]) {
      assert.equal(toLuaNumber(bad), undefined, JSON.stringify(bad));
    }
  });
});
