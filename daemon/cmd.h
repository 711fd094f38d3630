/* cmd.h - the s4kws subcommands. Each returns the process exit status; only main() exits.
 * Each command parses its own argv (argv[0] is the command name). */
#ifndef S4KWS_DAEMON_CMD_H
#define S4KWS_DAEMON_CMD_H

int cmd_classify(int argc, char **argv);  /* daemon/cmd_classify.c: file mode */
int cmd_info(int argc, char **argv);      /* daemon/cmd_info.c: model metadata, params, FLOPs */
int cmd_listen(int argc, char **argv);    /* daemon/cmd_listen.c: live daemon */
int cmd_devices(int argc, char **argv);   /* daemon/cmd_listen.c: list capture devices */

/* Path of the default model: $S4KWS_MODEL if set, else the installed/embedded default.
 * Returns a path, or NULL when the embedded copy must be used (see s4m_load_buffer). */
const char *cmd_default_model(void);

#endif
