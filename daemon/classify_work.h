/* classify_work.h - the worker threads of `s4kws classify`: each takes the next input item,
 * classifies or scans it and stores its records in the item's result slot.
 *
 *   struct cwork_pool *p = cwork_start(&run, jobs, err, len);   // threads running
 *   ... the main thread prints r->res[] in order as they are marked done (run.cond) ...
 *   cwork_join(p);                                              // all items done; freed
 */
#ifndef S4KWS_DAEMON_CLASSIFY_WORK_H
#define S4KWS_DAEMON_CLASSIFY_WORK_H

#include <stddef.h>

#include "classify.h"
#include "spot/postproc.h"

struct cwork_pool;

/* Start min(jobs, items) workers (jobs <= 0: one per core) over run r, which must not change
 * until cwork_join. NULL with err when none could start. */
struct cwork_pool *cwork_start(struct run *r, int jobs, char *err, size_t errlen);
/* Wait for the workers to finish every item, then free the pool. NULL is a no-op. */
void cwork_join(struct cwork_pool *p);

/* The post-processing configuration of the run's detection options for model m (kw: K slots;
 * pc->labels is left NULL). 0 or -errno with err. */
int cwork_pp_setup(const struct run *r, const struct s4m_model *m, struct pp_config *pc,
		   struct pp_kw *kw, char *err, size_t errlen);

#endif
