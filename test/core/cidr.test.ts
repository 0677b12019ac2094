import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipToBytes, isValidIpOrCidr, parseCidrList } from '../../src/core/cidr';

describe('parseCidrList: IPv4', () => {
  it('matches a range by its prefix, whatever the host bits of the entry', () => {
    const list = parseCidrList(['192.168.3.1/24']);
    assert.equal(list.match('192.168.3.0'), true);
    assert.equal(list.match('192.168.3.255'), true);
    assert.equal(list.match('192.168.4.0'), false);
    assert.equal(list.match('192.168.2.255'), false);
  });

  it('treats a plain address as /32', () => {
    const list = parseCidrList(['127.0.0.1']);
    assert.equal(list.match('127.0.0.1'), true);
    assert.equal(list.match('127.0.0.2'), false);
    assert.equal(parseCidrList(['10.1.1.1/32']).match('10.1.1.1'), true);
    assert.equal(parseCidrList(['10.1.1.1/32']).match('10.1.1.0'), false);
  });

  it('/0 matches every IPv4 address and no IPv6 address', () => {
    const list = parseCidrList(['0.0.0.0/0']);
    assert.equal(list.match('0.0.0.0'), true);
    assert.equal(list.match('255.255.255.255'), true);
    assert.equal(list.match('::1'), false);
  });

  it('handles the top bit and odd prefix lengths', () => {
    const list = parseCidrList(['128.0.0.0/1', '10.0.0.0/9']);
    assert.equal(list.match('200.1.1.1'), true);
    assert.equal(list.match('127.255.255.255'), false);
    assert.equal(list.match('10.127.0.1'), true);
    assert.equal(list.match('10.128.0.1'), false);
  });

  it('matches any entry of a list', () => {
    const list = parseCidrList(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']);
    assert.equal(list.match('172.31.255.1'), true);
    assert.equal(list.match('172.32.0.1'), false);
    assert.equal(parseCidrList([]).match('10.0.0.1'), false);
  });
});

describe('parseCidrList: IPv6', () => {
  it('matches prefixes across word boundaries', () => {
    const list = parseCidrList(['2001:db8::/32', 'fe80::/10', '2001:db8:abcd:12::/63']);
    assert.equal(list.match('2001:db8::1'), true);
    assert.equal(list.match('2001:db9::1'), false);
    assert.equal(list.match('febf:ffff::1'), true);
    assert.equal(list.match('fec0::1'), false);
    const narrow = parseCidrList(['2001:db9:abcd:12::/63']);
    assert.equal(narrow.match('2001:db9:abcd:13:ffff::1'), true);
    assert.equal(narrow.match('2001:db9:abcd:14::1'), false);
  });

  it('treats a plain address as /128 and /128 as exact', () => {
    const list = parseCidrList(['::1', '2001:db8::5/128']);
    assert.equal(list.match('::1'), true);
    assert.equal(list.match('0:0:0:0:0:0:0:1'), true);
    assert.equal(list.match('::2'), false);
    assert.equal(list.match('2001:db8:0:0:0:0:0:5'), true);
    assert.equal(list.match('2001:db8::6'), false);
  });

  it('::/0 matches every IPv6 address but not IPv4 ones', () => {
    const list = parseCidrList(['::/0']);
    assert.equal(list.match('::'), true);
    assert.equal(list.match('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), true);
    assert.equal(list.match('1.2.3.4'), false);
  });

  it('accepts brackets and zones on the address being matched', () => {
    const list = parseCidrList(['fe80::/10']);
    assert.equal(list.match('[fe80::1]'), true);
    assert.equal(list.match('fe80::1%eth0'), true);
    assert.equal(list.match('[fe80::1'), false);
  });
});

describe('parseCidrList: IPv4-mapped IPv6', () => {
  it('matches a mapped client address against IPv4 entries', () => {
    const list = parseCidrList(['10.0.0.0/8']);
    assert.equal(list.match('::ffff:10.1.2.3'), true);
    assert.equal(list.match('::FFFF:10.1.2.3'), true);
    assert.equal(list.match('::ffff:a01:203'), true, 'hex form of the mapped address');
    assert.equal(list.match('::ffff:11.1.2.3'), false);
    assert.equal(list.match('::10.1.2.3'), false, 'IPv4-compatible is not mapped');
  });

  it('turns mapped entries into IPv4 entries', () => {
    const list = parseCidrList(['::ffff:192.168.0.0/112', '::ffff:1.2.3.4']);
    assert.equal(list.match('192.168.7.7'), true);
    assert.equal(list.match('1.2.3.4'), true);
    assert.equal(list.match('1.2.3.5'), false);
  });
});

describe('parseCidrList: invalid entries', () => {
  const bad = [
    '',
    'abc',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4/',
    '1.2.3.4/33',
    '1.2.3.4/-1',
    '1.2.3.4/08',
    '1.2.3.4/8/8',
    '1.2.3.4 ',
    '::1/129',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '12345::',
    '1:',
    ':1',
    'g::1',
    '::ffff:1.2.3.256',
    '1.2.3.4::',
    '[::1]',
    'fe80::1%eth0',
  ];
  for (const entry of bad) {
    it(`refuses ${JSON.stringify(entry)}`, () => {
      assert.equal(isValidIpOrCidr(entry), false);
      assert.throws(() => parseCidrList(['10.0.0.0/8', entry]), { message: `invalid ip address: ${entry}` });
    });
  }

  it('accepts the usual spellings', () => {
    for (const good of [
      '0.0.0.0',
      '1.2.3.4/0',
      '::',
      '::/0',
      '::1',
      '1::',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:1.2.3.4',
      'FE80::/10',
    ]) {
      assert.equal(isValidIpOrCidr(good), true, good);
    }
  });

  it('never matches something that is not an address', () => {
    const list = parseCidrList(['0.0.0.0/0', '::/0']);
    for (const input of ['', 'localhost', '1.2.3', '::g', '1.2.3.4/8']) {
      assert.equal(list.match(input), false, input);
    }
  });
});

describe('ipToBytes', () => {
  it('returns 4 bytes for IPv4 and for mapped IPv6', () => {
    assert.deepEqual(ipToBytes('1.2.3.4'), Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(ipToBytes('::ffff:1.2.3.4'), Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(ipToBytes('255.255.255.255'), Buffer.from([255, 255, 255, 255]));
  });

  it('returns 16 bytes for IPv6', () => {
    assert.deepEqual(ipToBytes('::1'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
    assert.deepEqual(
      ipToBytes('2001:db8::ff00:42:8329'),
      Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0x00, 0x00, 0x42, 0x83, 0x29]),
    );
    assert.equal(ipToBytes('[::1]')?.length, 16);
  });

  it('returns undefined for anything else', () => {
    assert.equal(ipToBytes('nope'), undefined);
    assert.equal(ipToBytes(''), undefined);
    assert.equal(ipToBytes('1.2.3.4/8'), undefined);
  });
});
