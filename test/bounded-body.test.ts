/** Bodies sized up on their bytes before they are parsed, and error messages that never echo a body whole. */
import { describe, expect, it } from 'vitest';
import { countFormFields, countJsonValues, parseBoundedJson } from '../src/contract/bounded-body.js';
import { clipped, HttpError, issuesText, listed, MAX_ERROR_CHARS, quoted } from '../src/contract/errors.js';

describe('countJsonValues', () => {
  it('counts members and elements, not what strings hold', () => {
    expect(countJsonValues('{}', 100)).toBe(1);
    expect(countJsonValues('{"a":1,"b":[1,2,3]}', 100)).toBe(5);
    // Brackets, commas and escaped quotes inside strings are text.
    expect(countJsonValues('{"a,[{":"x\\",[{,\\\\","b":"\\\\"}', 100)).toBe(2);
    expect(countJsonValues(`{"prompt":"${'a,'.repeat(100_000)}"}`, 100)).toBe(1);
  });

  it('stops counting past the bound', () => {
    const many = `{${Array.from({ length: 10_000 }, (_, i) => `"k${i}":1`).join(',')}}`;
    expect(countJsonValues(many, 64)).toBe(65);
    expect(countJsonValues(many, 100_000)).toBe(10_000);
  });

  it('refuses a body over the bound before parsing it, and says where JSON is malformed', () => {
    const many = `{${Array.from({ length: 1000 }, (_, i) => `"k${i}":1`).join(',')}}`;
    expect(() => parseBoundedJson(many, 64)).toThrow(/JSON body has more than 64 keys and array items/);
    expect(() => parseBoundedJson('{"a":', 64)).toThrow(/malformed JSON body/);
    expect(parseBoundedJson('{"a":[1,2]}', 64)).toEqual({ a: [1, 2] });
  });
});

describe('countFormFields', () => {
  it('counts urlencoded fields and multipart parts on the raw bytes', async () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(countFormFields(bytes('a=1&b=2&c=3'), 'application/x-www-form-urlencoded', 10)).toBe(3);
    expect(countFormFields(bytes('&'.repeat(1000)), 'application/x-www-form-urlencoded', 10)).toBe(11);
    const form = new FormData();
    for (let i = 0; i < 5; i++) form.append(`f${i}`, 'x');
    const request = new Request('http://x/', { method: 'POST', body: form });
    const type = request.headers.get('content-type')!;
    expect(countFormFields(new Uint8Array(await request.arrayBuffer()), type, 10)).toBe(5);
  });
});

describe('error messages', () => {
  it('are cut to a few hundred characters, saying how long they were', () => {
    const long = 'k'.repeat(20 * 1024 * 1024);
    const error = new HttpError(400, `unknown field "${long}"`);
    expect(error.message.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(error.message).toMatch(/\.\.\. \(20971536 characters\)$/);
    expect(clipped('short')).toBe('short');
    expect(quoted(long)).toBe(`"${'k'.repeat(40)}"... (20971520 characters)`);
    expect(listed(['"a"', '"b"', '"c"', '"d"'], 2)).toBe('"a", "b" and 2 more');
    const issues = Array.from({ length: 1000 }, (_, i) => ({ path: ['outputs', i], message: `Invalid option ${'x'.repeat(1000)}` }));
    const text = issuesText(issues);
    expect(text.length).toBeLessThan(600);
    expect(text).toMatch(/^outputs\.0: Invalid option x+\.\.\. \(1026 characters\); outputs\.1: .*; and 997 more$/);
  });
});
