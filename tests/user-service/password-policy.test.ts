import { describe, expect, it } from 'bun:test';
import { statSync } from 'node:fs';
import { COMMON_PASSWORDS } from '../../services/user-service/src/common-passwords.ts';
import {
  checkPassword,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  type PasswordContext,
} from '../../services/user-service/src/password-policy.ts';

const ada: PasswordContext = { username: 'ada', email: 'ada.lovelace@example.org' };
const codes = (password: string, context: PasswordContext = ada) => checkPassword(password, context).map((p) => p.code);

describe('checkPassword', () => {
  it('accepts good passphrases', () => {
    for (const password of ['correct horse battery staple', 'Tall-Giraffe-Imputes-42', 'plum violin harbour 7 kites', 'Zr8#qL2v!mW4pT']) {
      expect(checkPassword(password, ada)).toEqual([]);
    }
  });

  describe('length', () => {
    it(`refuses fewer than ${MIN_PASSWORD_LENGTH} code points and accepts exactly ${MIN_PASSWORD_LENGTH}`, () => {
      expect(codes('Zr8#qL2v!')).toEqual(['too_short']);
      expect(codes('Zr8#qL2v!m')).toEqual([]);
      expect(codes('')).toContain('too_short');
    });

    it('counts Unicode code points, not UTF-16 units', () => {
      const dna = '🧬'.repeat(10); // 20 UTF-16 units, 10 code points
      expect(dna.length).toBe(20);
      expect(codes(dna)).not.toContain('too_short');
      expect(codes(dna)).toEqual(['sequence']); // one character repeated
      expect(codes('🧬🧪'.repeat(5))).toEqual([]);
      expect(codes('🧬🧪'.repeat(4) + '🧬')).toEqual(['too_short']); // 9 code points, 18 units
      expect(codes('ébène-île-ça')).toEqual([]);
    });

    it(`refuses more than ${MAX_PASSWORD_LENGTH} code points, and only reports that`, () => {
      const longest = 'plum violin harbour kites '.repeat(20).slice(0, MAX_PASSWORD_LENGTH);
      expect(codes(longest)).toEqual([]);
      expect(codes(longest + 'x')).toEqual(['too_long']);
      expect(codes('🧬🧪'.repeat(128))).toEqual([]); // 256 code points, 512 units
      expect(codes('🧬🧪'.repeat(128) + '🧬')).toEqual(['too_long']);
      expect(codes('password'.repeat(1000))).toEqual(['too_long']);
    });
  });

  describe('common passwords', () => {
    it('refuses listed passwords whatever the case', () => {
      expect(codes('Imputation')).toEqual(['common']);
      expect(codes('IMPUTATION')).toEqual(['common']);
      expect(codes('administrator')).toEqual(['common']);
    });

    it('refuses a listed stem followed by digits and symbols', () => {
      for (const password of ['Password123!', 'Genotype-2025', 'Michigan!!!!', 'p@ssw0rd2024', 'trustno1234!', 'Dragon🧬🧬🧬🧬🧬']) {
        expect(codes(password)).toEqual(['common']);
      }
      expect(codes('qwertyuiop1')).toContain('common');
    });

    it('refuses a listed entry repeated', () => {
      expect(codes('passwordpassword')).toEqual(['common']);
      expect(codes('MonkeyMonkey1')).toEqual(['common']);
      expect(codes('password1password1')).toEqual(['common']);
    });

    it('does not refuse a password that merely contains a listed word', () => {
      expect(codes('my password is imputation-proof')).toEqual([]);
      expect(codes('42 dragons ate my genotypes')).toEqual([]);
    });
  });

  describe('username', () => {
    it('refuses a password containing the username, ignoring case', () => {
      const context = { username: 'GeneHunter', email: 'x@example.org' };
      expect(codes('my-genehunter-key', context)).toEqual(['contains_username']);
      expect(codes('MY-GENEHUNTER-KEY', context)).toEqual(['contains_username']);
    });

    it('ignores usernames shorter than 3 characters', () => {
      expect(codes('lab bench coat tail', { username: 'ab', email: 'x@example.org' })).toEqual([]);
      expect(codes('xyzADA12345xx', { username: 'Ada', email: 'x@example.org' })).toEqual(['contains_username']);
    });
  });

  describe('email', () => {
    it('refuses a password containing the local part, ignoring case', () => {
      expect(codes('Lovelace-rules-42', { username: 'zz', email: 'lovelace@example.org' })).toEqual(['contains_email']);
    });

    it('refuses a password containing the whole email, even when the local part is short', () => {
      expect(codes('me@lab.example.org', { username: 'zz', email: 'Me@Lab.Example.org' })).toEqual(['contains_email']);
      expect(codes('me and my lab bench', { username: 'zz', email: 'me@lab.example.org' })).toEqual([]);
    });

    it('reports username and email separately when both appear', () => {
      expect(codes('Ada.Lovelace-rules')).toEqual(['contains_username', 'contains_email']);
    });

    it('ignores an empty username and email', () => {
      expect(codes('plum violin harbour', { username: '', email: '' })).toEqual([]);
    });
  });

  describe('sequences', () => {
    it('refuses one character repeated', () => {
      expect(codes('aaaaaaaaaaaa')).toContain('sequence');
      expect(codes('ZZZZZZZZZZZZ')).toContain('sequence');
      expect(codes('!!!!!!!!!!!!')).toContain('sequence');
    });

    it('refuses keyboard, alphabet and digit runs in either direction', () => {
      for (const password of ['1234567890', '0987654321', 'abcdefghijk', 'KLMNOPQRSTUV', 'qwertyuiop', 'poiuytrewq', 'asdfghjkl;', '1qaz2wsx3edc', '!@#$%^&*()', '12345678901234']) {
        expect(codes(password)).toContain('sequence');
      }
    });

    it('refuses a run followed by digits or symbols', () => {
      expect(codes('hijklmnop!!')).toEqual(['sequence']);
    });

    it('does not refuse a mix of runs and other text', () => {
      expect(codes('abc plum violin xyz')).toEqual([]);
    });
  });

  it('never repeats the password, username or email in a message', () => {
    const samples: [string, PasswordContext][] = [
      ['Password123!', ada],
      ['short', ada],
      ['x'.repeat(MAX_PASSWORD_LENGTH + 1), ada],
      ['Ada.Lovelace-rules', ada],
      ['qwertyuiop', ada],
      ['aaaaaaaaaaaa', ada],
      ['genehunter!!', { username: 'genehunter', email: 'genehunter@example.org' }],
    ];
    for (const [password, context] of samples) {
      const problems = checkPassword(password, context);
      expect(problems.length).toBeGreaterThan(0);
      for (const { message } of problems) {
        const text = message.toLowerCase();
        expect(text).not.toContain(password.toLowerCase());
        expect(text).not.toContain(context.username.toLowerCase());
        expect(text).not.toContain(context.email.toLowerCase());
      }
    }
  });

  it('gives every problem an actionable message', () => {
    for (const password of ['short', 'x'.repeat(300), 'Password123!', 'Ada.Lovelace-rules', '1234567890']) {
      for (const { message } of checkPassword(password, ada)) {
        expect(message).toMatch(/^(Use|Leave|Avoid|This password)/);
        expect(message.endsWith('.')).toBe(true);
      }
    }
  });
});

describe('COMMON_PASSWORDS', () => {
  it('holds a few hundred to ~2,000 lowercase entries without whitespace', () => {
    expect(COMMON_PASSWORDS.size).toBeGreaterThanOrEqual(300);
    expect(COMMON_PASSWORDS.size).toBeLessThanOrEqual(2000);
    for (const entry of COMMON_PASSWORDS) {
      expect(entry).toBe(entry.toLowerCase());
      expect(entry).not.toMatch(/\s/);
    }
    for (const entry of ['password', 'qwerty', 'letmein', 'iloveyou', 'trustno1', 'passw0rd', 'imputation', 'genotype', 'michigan']) {
      expect(COMMON_PASSWORDS.has(entry)).toBe(true);
    }
  });

  it('stays well under 50 KB', () => {
    const file = new URL('../../services/user-service/src/common-passwords.ts', import.meta.url);
    expect(statSync(file).size).toBeLessThan(50_000);
  });
});
