process.env.TZ = 'UTC'; // formatStart is tested in a known time zone

// Unit tests of the pure logic (src/model.ts): no JupyterLab module is loaded, so plain ts-jest on CommonJS.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
