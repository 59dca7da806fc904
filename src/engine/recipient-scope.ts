import { ScopeValue } from '../templates/index.js';

/** The subscriber a `subscribersOf` recipient is, as notification keys see them. */
export interface RecipientSubscriber {
  id: string;
  name: string | null;
  /** Their preferences with the configured defaults applied. */
  preferences: Record<string, string | boolean>;
}

/** A planned recipient: the address the channel uses and, for `subscribersOf`, whose it is. */
export interface PlannedRecipient {
  address: string | null;
  subscriber?: RecipientSubscriber;
}

/**
 * `recipient` in notification key templates: renders, filters and compares as the address, as it
 * always has (`{{ recipient }}`, `{% if recipient == "U1" %}`), and also gives the subscriber's
 * `preferences`, `id` and `name` (empty preferences and no id for a literal address).
 */
export class RecipientValue extends ScopeValue {
  readonly preferences: Readonly<Record<string, string | boolean>>;
  readonly id: string | undefined;
  readonly name: string | null | undefined;
  readonly #address: string;

  constructor(address: string, subscriber?: RecipientSubscriber) {
    super();
    this.#address = address;
    this.preferences = { ...subscriber?.preferences };
    this.id = subscriber?.id;
    this.name = subscriber?.name;
  }

  override valueOf(): string {
    return this.#address;
  }

  override toString(): string {
    return this.#address;
  }

  /** `{{ recipient | json }}` is the address, as it was. */
  toJSON(): string {
    return this.#address;
  }

  /** `{{ recipient.size }}` and `| size` are the address's length, as they were. */
  get size(): number {
    return this.#address.length;
  }
}

/** The value of `recipient` in a key template: null (no recipient) stays null. */
export function recipientScope(recipient: PlannedRecipient): RecipientValue | null {
  return recipient.address === null ? null : new RecipientValue(recipient.address, recipient.subscriber);
}
