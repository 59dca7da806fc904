import { errorMessage, HeraldError } from '../errors.js';
import type { Held } from './leases.js';
import {
  type Channel,
  type ChannelResult,
  type DeliveryRequest,
  failed,
  retry,
  SendTimeoutError,
} from './types.js';

/**
 * How long a channel has to answer once its send's signal is aborted. One that honours the signal
 * answers within moments, with its own account of what was cut short; one that ignores it gives
 * its slot back anyway when this has passed.
 */
export const ABORT_GRACE_MS = 1000;

/**
 * One send within the channel's deadline: at `timeoutMs` its signal is aborted, and whatever
 * aborted it (the deadline, a lost lease, shutdown: each calls `held.abort`), the channel gets
 * ABORT_GRACE_MS more to answer before the send is taken as a retry with that reason. The slot is
 * then free even if the channel ignores its signal. Never rejects: a channel that throws is a retry.
 */
export function sendWithDeadline(
  channel: Channel,
  request: Omit<DeliveryRequest, 'signal'>,
  held: Pick<Held, 'abort'>,
): Promise<ChannelResult> {
  const controller = new AbortController();
  return new Promise<ChannelResult>((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    const finish = (result: ChannelResult) => {
      if (held.abort === null) return;
      held.abort = null;
      clearTimeout(deadline);
      clearTimeout(grace);
      resolve(result);
    };
    held.abort = (reason) => {
      if (controller.signal.aborted) return;
      controller.abort(reason);
      grace = setTimeout(() => finish(retry(reason.message)), ABORT_GRACE_MS);
    };
    const startedAt = performance.now();
    const onDeadline = () => {
      // A timer counts from the loop's clock as it was when the loop last woke, so a send started
      // late in a busy turn would be cut off a few milliseconds before its time.
      const left = channel.timeoutMs - (performance.now() - startedAt);
      if (left > 0) deadline = setTimeout(onDeadline, Math.ceil(left));
      else held.abort?.(new SendTimeoutError(channel.timeoutMs));
    };
    let deadline = setTimeout(onDeadline, channel.timeoutMs);
    let sending: Promise<ChannelResult>;
    try {
      sending = channel.send({ ...request, signal: controller.signal });
    } catch (err) {
      sending = Promise.reject(err);
    }
    sending.then(finish, (err: unknown) =>
      // A render error is the config's fault and will not get better by retrying.
      finish(
        err instanceof HeraldError && err.code === 'TEMPLATE_ERROR'
          ? failed(err.message)
          : retry(`channel threw: ${errorMessage(err)}`),
      ),
    );
  });
}
