/* batch.h - which of a run's inputs this process handles: one shard of many, and not those
 * an earlier run already answered (file mode at scale on existing schedulers).
 *
 * Usage:
 *   int k, n;
 *   if (batch_parse_shard("3/8", &k, &n, err, sizeof err) < 0) ...   // shard 3 of 8
 *   if (!batch_in_shard(path, k, n)) skip;                         // stable: depends on the path only
 *   struct batch_done *d = batch_done_load("out.jsonl", err, sizeof err);  // --format json output
 *   if (batch_done_has(d, path)) skip;
 *   batch_done_free(d);
 *
 * A shard is chosen by a 64-bit FNV-1a hash of the input's path (finalised), so the same path lands in the
 * same shard whatever the order or number of the other inputs, and N processes given the same
 * inputs with --shard 1/N .. N/N each take a disjoint part that together is everything: a Slurm
 * job array or a Kubernetes Indexed Job needs no coordinator. "Done" means a JSON line of that
 * file with the input's "file" and no "error" (a line cut by a killed job is not JSON and does
 * not count; with --channels each, every channel's record must be error-free). A missing file
 * is an empty set (the first run). Threads: none shared; the set is read-only after loading.
 */
#ifndef S4KWS_DAEMON_BATCH_H
#define S4KWS_DAEMON_BATCH_H

#include <stddef.h>

/* "K/N" with 1 <= K <= N <= 1000000. 0, or -EINVAL with one sentence in err. */
int batch_parse_shard(const char *s, int *k, int *n, char *err, size_t errlen);
/* 1 when path belongs to shard k of n. */
int batch_in_shard(const char *path, int k, int n);

struct batch_done;
/* Read the inputs already answered from a classify --format json output. NULL on a read error
 * or no memory (sentence in err); a file that does not exist gives an empty set. */
struct batch_done *batch_done_load(const char *path, char *err, size_t errlen);
int batch_done_has(const struct batch_done *d, const char *path);
size_t batch_done_count(const struct batch_done *d);
void batch_done_free(struct batch_done *d);

#endif
