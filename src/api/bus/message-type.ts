// The D-Bus message types and header flags, by the specification's numbers: one place for the
// code that builds or reads messages on the wire.
export const METHOD_CALL = 1;
export const METHOD_RETURN = 2;
export const ERROR = 3;
export const SIGNAL = 4;
/** header flag: the caller wants no reply (and the bus keeps no slot for one) */
export const NO_REPLY_EXPECTED = 0x1;
