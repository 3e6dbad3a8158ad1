/** Jest in ESM mode (NestJS 12 and Prisma 7 are ESM): run with NODE_OPTIONS=--experimental-vm-modules. */
const base = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  moduleNameMapper: {
    '^@seqline/(.*)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
};

export default {
  // Inside the checkout, so a fresh clone never reuses transforms made under another configuration.
  cacheDirectory: '<rootDir>/node_modules/.cache/jest',
  // A global option (per-project values are ignored); end-to-end suites stream real answers.
  testTimeout: 240_000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/apps/**/*.spec.ts', '<rootDir>/libs/**/*.spec.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'], slowTestThreshold: 30 },
    { ...base, displayName: 'faults', testMatch: ['<rootDir>/test/faults/**/*.fault-spec.ts'], slowTestThreshold: 120 },
  ],
};
