export { SETTINGS } from '@seqline/config';
export const LOGGER = Symbol('LOGGER');
