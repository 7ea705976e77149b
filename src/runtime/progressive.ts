/**
 * Draft, then final: a progressive request (one the builder gave a `draft`) runs as two jobs on the answer path.
 * The draft job (the realtime preset, the few artefacts a viewer shows) is submitted first, so it takes the first
 * free place; the final job, the one the caller follows, right after. Each artefact the draft delivers is listed
 * on the final job as `draft_<kind>` (spz: draft_spz), its event marked `draft: true`, until the final has an
 * artefact of its own or ends: a draft never arrives after the final, and the draft job is cancelled then. The
 * draft job is readable by its id but left out of lists. Without a draft, this is `answers.submit`.
 */
import { randomUUID } from 'node:crypto';
import type { AnswerOptions, AnswerRequest, Answers, Submitted } from './answer.js';
import type { Logger } from './log.js';

/** The name a draft's artefact has on the final job. */
export const draftName = (kind: string): string => `draft_${kind}`;

/** The kind of a draft's artefact name (draft_spz: spz), or null for a name that is not a draft's. */
export function draftKind(name: string): string | null {
  return name.startsWith('draft_') ? name.slice('draft_'.length) : null;
}

/**
 * Submits a request, and its draft first when it has one. Refused as the final would be (the draft is then
 * cancelled); a draft that is refused leaves the final to go on alone. Resolves with the final job's id.
 */
export async function submitProgressive(
  answers: Answers,
  request: AnswerRequest,
  options: AnswerOptions = {},
  logger?: Logger,
): Promise<Submitted> {
  const { draft, ...rest } = request;
  if (!draft) return answers.submit(request, options);
  const id = rest.id ?? randomUUID();
  const final: AnswerRequest = { ...rest, id };
  const { mesh: _mesh, ...base } = final;
  let drafted: Submitted | null = null;
  try {
    drafted = await answers.submit({ ...base, id: `${id}.draft`, preset: draft.preset, wants: draft.wants, draftOf: id });
    drafted.done.catch(() => {}); // a draft that fails, is declined or cancelled leaves the final as it is
  } catch (err) {
    logger?.info({ job: id, err: (err as Error).message }, 'draft not made');
  }
  let submitted: Submitted;
  try {
    submitted = await answers.submit(final, options);
  } catch (err) {
    if (drafted) void answers.cancel(drafted.id);
    throw err;
  }
  if (drafted) {
    const draftId = drafted.id;
    // Once the final has ended, a draft still running is work nobody will see.
    const stop = () => void answers.cancel(draftId);
    submitted.done.then(stop, stop);
    void relayDrafts(answers, draftId, submitted.id);
  }
  return submitted;
}

/** Lists each artefact of the draft job on the final job as it arrives, until the final has its own. */
async function relayDrafts(answers: Answers, draftId: string, finalId: string): Promise<void> {
  for await (const event of answers.events(draftId)) {
    if (event.type !== 'artefact') continue;
    const ref = await answers.artefact(draftId, event.name);
    if (!ref) continue;
    if (!(await answers.attachDraft(finalId, { ...ref, name: draftName(ref.name) }))) {
      await answers.cancel(draftId);
      return;
    }
  }
}
