/* test_plot.c - plot_confusion_png writes a PNG of the expected size whose cells are coloured
 * by the share of the true class (dark diagonal for a good classifier, white for empty cells),
 * and refuses bad input and unwritable paths with a sentence. */
#include <cairo.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/plot.h"
#include "tests/check.h"

int main(void)
{
	const char *labels[] = {"yes", "no", "_silence_", "_unknown_"};
	long conf[16] = {90, 5, 0, 5, 0, 100, 0, 0, 1, 0, 40, 0, 3, 3, 3, 91};
	char path[256], err[256] = "";
	snprintf(path, sizeof path, "%s/test_plot_%d.png", P_tmpdir, (int)getpid());
	CHECK_EQ(plot_confusion_png(path, "test", 4, labels, conf, err, sizeof err), 0);
	cairo_surface_t *s = cairo_image_surface_create_from_png(path);
	CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS, "cannot read the PNG back");
	if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
		int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
		CHECK(w > 300 && h > 250 && w < 2000 && h < 2000, "size %dx%d", w, h);
		/* count dark-blue and pure white pixels: the diagonal makes a lot of dark */
		cairo_surface_flush(s);
		unsigned char *d = cairo_image_surface_get_data(s);
		int stride = cairo_image_surface_get_stride(s);
		long dark = 0, white = 0;
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				unsigned px = *(unsigned *)(d + (size_t)y * (size_t)stride + 4 * (size_t)x);
				unsigned r = px >> 16 & 255, g = px >> 8 & 255, b = px & 255;
				dark += r < 40 && g < 70 && b > 80 && b < 140;
				white += r == 255 && g == 255 && b == 255;
			}
		CHECK(dark > 4 * 30 * 30, "dark pixels %ld: the diagonal is not drawn", dark);
		CHECK(white > dark, "white %ld", white);
	}
	cairo_surface_destroy(s);
	unlink(path);
	CHECK_EQ(plot_confusion_png(path, "x", 0, labels, conf, err, sizeof err), -EINVAL);
	err[0] = 0;
	CHECK_EQ(plot_confusion_png("/nonexistent/dir/cm.png", "x", 4, labels, conf, err, sizeof err),
		 -EIO);
	CHECK(strstr(err, "/nonexistent/dir/cm.png") != NULL, "err: %s", err);
	return CHECK_DONE();
}
