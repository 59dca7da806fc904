/** Where a value is in the config document: keys and list indexes from the top. */
export type ConfigPath = (string | number)[];
