import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installRoot, prismaDir } from './install-root.js';

describe('installRoot', () => {
  it('finds the installation from any working directory, and SEQLINE_PRISMA_DIR overrides its prisma folder', () => {
    const repository = resolve('.');
    const elsewhere = mkdtempSync(join(tmpdir(), 'seqline-cwd-'));
    const cwd = process.cwd();
    try {
      process.chdir(elsewhere);
      expect(installRoot()).toBe(repository);
      expect(prismaDir({})).toBe(join(repository, 'prisma'));
      expect(prismaDir({ SEQLINE_PRISMA_DIR: 'migrations-here' })).toBe(join(elsewhere, 'migrations-here'));
    } finally {
      process.chdir(cwd);
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
