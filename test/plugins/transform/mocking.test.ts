import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import mocking, { sampleFromSchema } from '../../../src/plugins/builtin/mocking';
import type { PluginExit } from '../../../src/plugins/types';
import { checkPluginConf, compilePluginConf, testContext } from '../support/test-context';

describe('mocking', () => {
  it('answers with the example, status, content type, mock header and extra headers', async () => {
    const conf = compilePluginConf(mocking, {
      response_example: '{"user":"$arg_name"}',
      response_status: 201,
      response_headers: { 'X-Env': 'test', 'X-Num': 3 },
    });
    const exit = (await mocking.access!(conf, testContext({ uri: '/u?name=rose' }))) as PluginExit;
    assert.equal(exit.status, 201);
    assert.equal(exit.body, '{"user":"rose"}');
    assert.equal(exit.headers?.['Content-Type'], 'application/json;charset=utf8');
    assert.match(exit.headers?.['x-mock-by'] ?? '', /^Palisade\//);
    assert.equal(exit.headers?.['X-Env'], 'test');
    assert.equal(exit.headers?.['X-Num'], '3');
  });

  it('generates a sample from response_schema with the declared types', async () => {
    const conf = compilePluginConf(mocking, {
      with_mock_header: false,
      response_schema: {
        type: 'object',
        properties: {
          id: { type: 'integer', minimum: 5, maximum: 9 },
          name: { type: 'string', example: 'fixed' },
          score: { type: 'number' },
          active: { type: 'boolean' },
          tags: { type: 'array', items: { type: 'string', minLength: 2, maxLength: 4 } },
          kind: { type: 'string', enum: ['a', 'b'] },
        },
      },
    });
    const exit = (await mocking.access!(conf, testContext())) as PluginExit;
    assert.equal(exit.headers?.['x-mock-by'], undefined);
    const body = JSON.parse(String(exit.body)) as Record<string, unknown>;
    assert.ok(Number.isInteger(body.id) && (body.id as number) >= 5 && (body.id as number) <= 9);
    assert.equal(body.name, 'fixed');
    assert.equal(typeof body.score, 'number');
    assert.equal(typeof body.active, 'boolean');
    assert.ok(Array.isArray(body.tags) && body.tags.length >= 1 && body.tags.length <= 3);
    for (const tag of body.tags as string[]) assert.ok(tag.length >= 2 && tag.length <= 4);
    assert.equal(body.kind, 'a');
  });

  it('renders XML for an xml content type', async () => {
    const conf = compilePluginConf(mocking, {
      content_type: 'application/xml',
      response_schema: { type: 'object', properties: { a: { type: 'string', example: 'x<y' } } },
    });
    const exit = (await mocking.access!(conf, testContext())) as PluginExit;
    assert.equal(exit.body, '<data><a>x&#60;y</a></data>');
  });

  it('waits `delay` seconds first', async () => {
    const conf = compilePluginConf(mocking, { response_example: 'late', delay: 1 });
    const started = Date.now();
    const exit = (await mocking.access!(conf, testContext())) as PluginExit;
    assert.equal(exit.body, 'late');
    assert.ok(Date.now() - started >= 900);
  });

  it('needs an example or a schema', () => {
    const result = checkPluginConf(mocking, { response_status: 200 });
    assert.equal(result.ok, false);
    assert.equal(sampleFromSchema({ type: 'null' }), null);
  });
});
