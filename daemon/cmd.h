/* cmd.h - the s4kws subcommands. Each returns the process exit status; only main() exits.
 * Each command parses its own argv (argv[0] is the command name). */
#ifndef S4KWS_DAEMON_CMD_H
#define S4KWS_DAEMON_CMD_H

#include <stddef.h>

int cmd_classify(int argc, char **argv);  /* daemon/cmd_classify.c: file mode */
int cmd_info(int argc, char **argv);      /* daemon/cmd_info.c: model metadata, params, FLOPs */
int cmd_listen(int argc, char **argv);    /* daemon/cmd_listen.c: live daemon */
int cmd_devices(int argc, char **argv);   /* daemon/cmd_listen.c: list capture devices */

/* Path of the default model: $S4KWS_MODEL if set, else the installed/embedded default.
 * Returns a path, or NULL when the embedded copy must be used (see s4m_load_buffer). */
const char *cmd_default_model(void);

/* Load the model every command uses (daemon/default_model.c): path_or_null if given, else
 * $S4KWS_MODEL, else the copy embedded at build time; a value naming a built-in model
 * ("default", "wake") that is not a file selects its embedded copy. rate as for s4m_load().
 * Returns NULL with one sentence in err (also when this build embeds no model and none is
 * given). */
struct s4m_model;
struct s4m_model *cmd_load_model(const char *path_or_null, double rate, char *err, size_t errlen);
/* Where cmd_load_model(path_or_null, ...) takes the model from, for messages: the path, or
 * "(embedded default model)" / "(embedded wake-word model)", or NULL when there is none. */
const char *cmd_model_source(const char *path_or_null);
/* The names of the built-in models, for --help and info: "default, wake", ... or "none". */
const char *cmd_builtin_models(void);

#endif
