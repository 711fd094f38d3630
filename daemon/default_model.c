/* default_model.c - where s4kws finds its model: --model, $S4KWS_MODEL, or a copy embedded in
 * the binary at build time.
 *
 * Design: the build (daemon/meson.build) generates default_model_embed.h, which defines
 * S4KWS_EMBED_FILE (the default weights copied into the build dir) when a default model existed
 * at configure time, and S4KWS_EMBED_WAKE_FILE likewise for the wake-word model. The bytes are
 * pulled into .rodata with the assembler's .incbin, so the binary works from any directory and
 * needs no install step or Python. A --model value that names a built-in model ("default",
 * "wake") and is not a file selects its embedded copy. Without a default model the build still
 * succeeds; loading then fails with a sentence that says what to do.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "default_model_embed.h"
#include "model/s4m.h"

/* An embedded file as the symbols NAME_begin .. NAME_end in .rodata (its sha256 is in the
 * generated header, so a changed file changes this object). */
#define S4KWS_INCBIN(name, file)                                                                   \
	__asm__(".pushsection .rodata\n"                                                          \
		".balign 64\n"                                                                    \
		".globl " #name "_begin\n"                                                        \
		".hidden " #name "_begin\n"                                                       \
		".type " #name "_begin, @object\n" #name "_begin:\n"                              \
		".incbin \"" file "\"\n"                                                          \
		".globl " #name "_end\n"                                                          \
		".hidden " #name "_end\n" #name "_end:\n"                                          \
		".byte 0\n"                                                                       \
		".popsection\n")

#ifdef S4KWS_EMBED_FILE
S4KWS_INCBIN(s4kws__model, S4KWS_EMBED_FILE);
extern const unsigned char s4kws__model_begin[], s4kws__model_end[];
#endif
#ifdef S4KWS_EMBED_WAKE_FILE
S4KWS_INCBIN(s4kws__wake, S4KWS_EMBED_WAKE_FILE);
extern const unsigned char s4kws__wake_begin[], s4kws__wake_end[];
#endif

struct builtin {
	const char *name, *source;
	const unsigned char *begin, *end;
};

static const struct builtin builtins[] = {
#ifdef S4KWS_EMBED_FILE
	{"default", "(embedded default model)", s4kws__model_begin, s4kws__model_end},
#endif
#ifdef S4KWS_EMBED_WAKE_FILE
	{"wake", "(embedded wake-word model)", s4kws__wake_begin, s4kws__wake_end},
#endif
	{NULL, NULL, NULL, NULL},
};

/* The built-in model a --model value names (none given: the default), or NULL for a path. */
static const struct builtin *builtin_for(const char *path_or_null)
{
	const char *name = path_or_null ? path_or_null : "default";
	if (path_or_null && access(path_or_null, F_OK) == 0)
		return NULL; /* a file of that name wins */
	for (const struct builtin *b = builtins; b->name; b++)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

const char *cmd_builtin_models(void)
{
#if defined(S4KWS_EMBED_FILE) && defined(S4KWS_EMBED_WAKE_FILE)
	return "default, wake";
#elif defined(S4KWS_EMBED_FILE)
	return "default";
#elif defined(S4KWS_EMBED_WAKE_FILE)
	return "wake";
#else
	return "none";
#endif
}

const char *cmd_default_model(void)
{
	const char *e = getenv("S4KWS_MODEL");
	return e && *e ? e : NULL;
}

const char *cmd_model_source(const char *path_or_null)
{
	if (!path_or_null && cmd_default_model())
		path_or_null = cmd_default_model();
	const struct builtin *b = builtin_for(path_or_null);
	return b ? b->source : path_or_null;
}

struct s4m_model *cmd_load_model(const char *path_or_null, double rate, char *err, size_t errlen)
{
	const char *path = path_or_null ? path_or_null : cmd_default_model();
	const struct builtin *b = builtin_for(path);
	if (!b && path && !strchr(path, '/') && access(path, F_OK) != 0) {
		s4k_seterr(err, errlen, "'%s' is neither a file nor a built-in model (built in: %s).", path,
			   cmd_builtin_models());
		return NULL;
	}
	if (!b && path)
		return s4m_load(path, rate, err, errlen);
	if (!b) {
		s4k_seterr(err, errlen,
			   "no model: this s4kws embeds no default model (none existed when it was built); give --model FILE or set S4KWS_MODEL.");
		return NULL;
	}
	char e2[S4K_ERR_LEN];
	struct s4m_model *m = s4m_load_buffer(b->begin, (size_t)(b->end - b->begin), rate, e2, sizeof e2);
	if (!m)
		s4k_seterr(err, errlen, "%s: %s", b->source + 1, e2);
	return m;
}
