import { type ConfigView, get } from '../api';
import { ErrorNote, Json, useLoad } from '../components';

export function ConfigPage() {
  const { data, error } = useLoad((signal) => get<ConfigView>('/api/config', signal), []);
  return (
    <section>
      <h1>Config</h1>
      <ErrorNote error={error} />
      {data && (
        <>
          <p class="muted">
            {data.file ?? 'no file'} · {data.store} store · values from the environment and secrets show as
            ••••
          </p>
          <div data-testid="config">
            <Json value={data.config} />
          </div>
        </>
      )}
    </section>
  );
}
