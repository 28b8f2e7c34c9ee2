/** POST /oauth/v1/health_check: Duo's liveness answer to a verified client. */
import { checkClientAssertion } from './client-assertion.js';
import { INVALID_ASSERTION, PATH_HEALTH } from './emulator.constants.js';
import { DEFECTS, type DuoEmulatorFailure } from './emulator.defects.js';
import { duoFail, parseForm, type HttpExchange } from './emulator.http.js';
import type { EmulatorState } from './emulator.state.js';

export async function healthCheckEndpoint(state: EmulatorState, exchange: HttpExchange, body: Buffer, failure: DuoEmulatorFailure): Promise<void> {
  const form = parseForm(body);
  const clientId = form?.get('client_id');
  const assertion = form?.get('client_assertion');
  if (form === undefined || !clientId || !assertion) {
    const missing = form === undefined ? 'malformed form body' : !clientId ? 'client_id' : 'client_assertion';
    exchange.json(400, duoFail(state.now(), 40001, 'Missing required request parameters', missing), `invalid_request (${missing})`);
    return;
  }
  const checked = await checkClientAssertion(state, clientId, assertion, `${state.baseUrl}${PATH_HEALTH}`);
  if ('problem' in checked) {
    exchange.json(400, duoFail(state.now(), 40002, 'invalid_client', INVALID_ASSERTION), `invalid_client (${checked.problem})`);
    return;
  }
  const defective = DEFECTS[failure].healthAnswer;
  if (defective !== undefined) {
    exchange.json(200, defective(state.now()), `${failure} (failure)`);
    return;
  }
  exchange.json(200, { stat: 'OK', response: { timestamp: state.now() } }, 'ok');
}
