/* plot.c - draw a labelled, coloured confusion matrix with cairo.
 *
 * DESIGN: the figure must be readable without the text output next to it: both axes carry the
 * label names (column names rotated), every cell prints its count (white text on dark cells),
 * colour encodes the share of the true class so that rare and common classes are comparable,
 * and a colour bar says what the colours mean. The size follows the label count and the
 * longest label, so 2 or 35 classes both fit. Everything is drawn on an ARGB image surface
 * and written with cairo_surface_write_to_png; no fonts beyond cairo's toy "sans" API.
 */
#include "plot.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/err.h"

/* White -> dark blue, f in [0, 1]. */
static void colour(double f, double *r, double *g, double *b)
{
	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	*r = 1.0 - f * (1.0 - 0.03);
	*g = 1.0 - f * (1.0 - 0.19);
	*b = 1.0 - f * (1.0 - 0.42);
}

static double text_w(cairo_t *cr, const char *s)
{
	cairo_text_extents_t e;
	cairo_text_extents(cr, s, &e);
	return e.x_advance;
}

int plot_confusion_png(const char *path, const char *title, int K, const char *const *labels,
		       const long *conf, char *err, size_t errlen)
{
	if (K < 1 || K > 200) {
		s4k_seterr(err, errlen, "cannot plot a confusion matrix of %d labels", K);
		return -EINVAL;
	}
	const double cell = K <= 16 ? 46 : K <= 40 ? 30 : 18;
	const double font = K <= 16 ? 13 : K <= 40 ? 10 : 8;

	/* measure the longest label on a scratch surface */
	cairo_surface_t *tmp = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 8, 8);
	cairo_t *m = cairo_create(tmp);
	cairo_select_font_face(m, "sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(m, font);
	double lw = 0;
	for (int k = 0; k < K; k++)
		lw = fmax(lw, text_w(m, labels[k]));
	cairo_destroy(m);
	cairo_surface_destroy(tmp);

	const double left = lw + 40, top = lw + 70, bar_w = 18;
	const double grid = cell * K;
	const double width = left + grid + cell * 1.6 + 40 + bar_w + 60;
	const double height = top + grid + 50;
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)width, (int)height);
	cairo_t *cr = cairo_create(s);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	cairo_select_font_face(cr, "sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

	/* title and axis names */
	cairo_set_source_rgb(cr, 0, 0, 0);
	cairo_set_font_size(cr, font + 3);
	cairo_move_to(cr, 12, 22);
	cairo_show_text(cr, title ? title : "confusion matrix");
	cairo_set_font_size(cr, font);
	cairo_move_to(cr, left + grid / 2 - text_w(cr, "predicted") / 2, 44);
	cairo_show_text(cr, "predicted");
	cairo_save(cr);
	cairo_move_to(cr, 18, top + grid / 2 + text_w(cr, "true label") / 2);
	cairo_rotate(cr, -M_PI / 2);
	cairo_show_text(cr, "true label");
	cairo_restore(cr);

	char num[32];
	for (int t = 0; t < K; t++) {
		long row = 0;
		for (int p = 0; p < K; p++)
			row += conf[t * K + p];
		/* row label, right-aligned */
		cairo_set_source_rgb(cr, 0, 0, 0);
		cairo_move_to(cr, left - 6 - text_w(cr, labels[t]), top + t * cell + cell / 2 + font / 3);
		cairo_show_text(cr, labels[t]);
		for (int p = 0; p < K; p++) {
			long c = conf[t * K + p];
			double f = row ? (double)c / row : 0, r, g, b;
			colour(f, &r, &g, &b);
			cairo_rectangle(cr, left + p * cell, top + t * cell, cell, cell);
			cairo_set_source_rgb(cr, r, g, b);
			cairo_fill_preserve(cr);
			cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
			cairo_set_line_width(cr, 0.5);
			cairo_stroke(cr);
			if (c) {
				snprintf(num, sizeof num, "%ld", c);
				if (f > 0.5)
					cairo_set_source_rgb(cr, 1, 1, 1);
				else
					cairo_set_source_rgb(cr, 0, 0, 0);
				cairo_move_to(cr, left + p * cell + cell / 2 - text_w(cr, num) / 2,
					      top + t * cell + cell / 2 + font / 3);
				cairo_show_text(cr, num);
			}
		}
		/* row total and recall */
		cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
		snprintf(num, sizeof num, "%ld  %.0f%%", row,
			 row ? 100.0 * conf[t * K + t] / row : 0.0);
		cairo_move_to(cr, left + grid + 6, top + t * cell + cell / 2 + font / 3);
		cairo_show_text(cr, num);
	}
	/* frame around the diagonal cells, so correct answers are easy to find */
	cairo_set_source_rgb(cr, 0.9, 0.45, 0.1);
	cairo_set_line_width(cr, 1.5);
	for (int k = 0; k < K; k++) {
		cairo_rectangle(cr, left + k * cell + 1, top + k * cell + 1, cell - 2, cell - 2);
		cairo_stroke(cr);
	}
	/* column labels, rotated */
	cairo_set_source_rgb(cr, 0, 0, 0);
	for (int p = 0; p < K; p++) {
		cairo_save(cr);
		cairo_move_to(cr, left + p * cell + cell / 2 + font / 3, top - 6);
		cairo_rotate(cr, -M_PI / 2);
		cairo_show_text(cr, labels[p]);
		cairo_restore(cr);
	}
	cairo_move_to(cr, left + grid + 6, top - 6);
	cairo_show_text(cr, "n  recall");

	/* colour bar */
	double bx = left + grid + cell * 1.6 + 30, by = top, bh = grid;
	for (int i = 0; i < 100; i++) {
		double r, g, b;
		colour(1.0 - (i + 0.5) / 100.0, &r, &g, &b);
		cairo_rectangle(cr, bx, by + bh * i / 100.0, bar_w, bh / 100.0 + 0.5);
		cairo_set_source_rgb(cr, r, g, b);
		cairo_fill(cr);
	}
	cairo_set_source_rgb(cr, 0, 0, 0);
	cairo_set_line_width(cr, 0.8);
	cairo_rectangle(cr, bx, by, bar_w, bh);
	cairo_stroke(cr);
	for (int i = 0; i <= 4; i++) {
		snprintf(num, sizeof num, "%d%%", 100 - 25 * i);
		cairo_move_to(cr, bx + bar_w + 4, by + bh * i / 4.0 + font / 3);
		cairo_show_text(cr, num);
	}
	cairo_save(cr);
	cairo_move_to(cr, bx - 6, by + bh / 2 + text_w(cr, "share of the true label") / 2);
	cairo_rotate(cr, -M_PI / 2);
	cairo_show_text(cr, "share of the true label");
	cairo_restore(cr);

	cairo_status_t st = cairo_status(cr);
	cairo_destroy(cr);
	if (st == CAIRO_STATUS_SUCCESS)
		st = cairo_surface_write_to_png(s, path);
	cairo_surface_destroy(s);
	if (st != CAIRO_STATUS_SUCCESS) {
		s4k_seterr(err, errlen, "cannot write the plot '%s': %s", path,
			   cairo_status_to_string(st));
		return -EIO;
	}
	return 0;
}
