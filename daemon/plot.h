/* plot.h - confusion matrix as a PNG (cairo).
 *
 * Usage:
 *   long conf[K * K];                       // conf[t * K + p]: clips of true label t predicted p
 *   if (plot_confusion_png("cm.png", "val: 95.1 % of 912", K, labels, conf, err, sizeof err) < 0)
 *           fprintf(stderr, "%s\n", err);
 *
 * Rows are true labels, columns predictions. Each cell shows its count; its colour is the
 * count's share of the row (per-class recall on the diagonal), white 0 % to dark blue 100 %,
 * with a colour bar on the right. The last column shows each row's total and recall.
 * Threads: any thread; no shared state.
 */
#ifndef S4KWS_DAEMON_PLOT_H
#define S4KWS_DAEMON_PLOT_H

#include <stddef.h>

/* Write the PNG. Returns 0, -EINVAL (K < 1 or > 200) or -EIO (cairo could not write the file;
 * sentence in err naming it). */
int plot_confusion_png(const char *path, const char *title, int K, const char *const *labels,
		       const long *confusion /* (K, K) */, char *err, size_t errlen);

#endif
