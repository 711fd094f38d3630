/* default_model.c - where s4kws finds its model: --model, $S4KWS_MODEL, or the copy embedded in
 * the binary at build time.
 *
 * Design: the build (daemon/meson.build) generates default_model_embed.h, which defines
 * S4KWS_EMBED_FILE (the weights file copied into the build dir) when a default model existed at
 * configure time. The bytes are then pulled into .rodata with the assembler's .incbin, so the
 * binary works from any directory and needs no install step or Python. Without a default model
 * the build still succeeds; loading then fails with a sentence that says what to do.
 */
#include "cmd.h"

#include <stdlib.h>

#include "default_model_embed.h"
#include "model/s4m.h"

#ifdef S4KWS_EMBED_FILE
/* sha256 of the embedded file, so a changed file changes this object: S4KWS_EMBED_SHA256 */
__asm__(".pushsection .rodata\n"
	".balign 64\n"
	".globl s4kws__model_begin\n"
	".hidden s4kws__model_begin\n"
	".type s4kws__model_begin, @object\n"
	"s4kws__model_begin:\n"
	".incbin \"" S4KWS_EMBED_FILE "\"\n"
	".globl s4kws__model_end\n"
	".hidden s4kws__model_end\n"
	"s4kws__model_end:\n"
	".byte 0\n"
	".popsection\n");
extern const unsigned char s4kws__model_begin[], s4kws__model_end[];
#endif

const char *cmd_default_model(void)
{
	const char *e = getenv("S4KWS_MODEL");
	return e && *e ? e : NULL;
}

const char *cmd_model_source(const char *path_or_null)
{
	if (path_or_null)
		return path_or_null;
	if (cmd_default_model())
		return cmd_default_model();
#ifdef S4KWS_EMBED_FILE
	return "(embedded default model)";
#else
	return NULL;
#endif
}

struct s4m_model *cmd_load_model(const char *path_or_null, double rate, char *err, size_t errlen)
{
	const char *path = path_or_null ? path_or_null : cmd_default_model();
	if (path)
		return s4m_load(path, rate, err, errlen);
#ifdef S4KWS_EMBED_FILE
	char e2[S4K_ERR_LEN];
	struct s4m_model *m = s4m_load_buffer(s4kws__model_begin,
					      (size_t)(s4kws__model_end - s4kws__model_begin), rate,
					      e2, sizeof e2);
	if (!m)
		s4k_seterr(err, errlen, "embedded default model: %s", e2);
	return m;
#else
	s4k_seterr(err, errlen,
		   "no model: this s4kws embeds no default model (none existed when it was built); give --model FILE or set S4KWS_MODEL.");
	return NULL;
#endif
}
