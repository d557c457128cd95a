/**
 * The suite's assertions: vitest's Jest-style `expect` from @vitest/expect on
 * chai, usable under any runner (importing `vitest` itself fails outside the
 * vitest command). Same matchers and the same `expect(value, message)` form.
 */
import * as chai from 'chai';
import { JestAsymmetricMatchers, JestChaiExpect, JestExtend, type ExpectStatic } from '@vitest/expect';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

export const expect = chai.expect as unknown as ExpectStatic;
