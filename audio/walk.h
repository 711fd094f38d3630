/* walk.h - turn command-line inputs into an ordered list of audio files.
 *
 * Usage:
 *   struct walk_list wl;
 *   walk_init(&wl);
 *   for (int i = 0; i < argc; i++)
 *           if (walk_add(&wl, argv[i], stdin, err, sizeof err) < 0) ...   // only -ENOMEM
 *   for (size_t i = 0; i < wl.n; i++)
 *           wl.items[i].error ? report(wl.items[i].path, wl.items[i].error)
 *                             : classify(wl.items[i].path);
 *   walk_fini(&wl);
 *
 * An input is one of:
 *   FILE     taken as given (whatever its name; a missing one becomes an item with an error)
 *   DIR      every audio file below it, recursively, in byte order of the names; hidden
 *            entries (".name") are skipped, and only names with an audio extension are taken
 *            (af_is_audio_name: .wav .flac .ogg .mp3 ...); symlinks are followed, loops are not
 *   @LIST    one input per line of the text file LIST (FILE or DIR; relative paths are relative
 *            to the current directory, like tar -T); blank lines and lines starting with '#'
 *            are skipped
 *   -        the same, with the list read from the given stream (normally stdin)
 * Problems with one input (missing file, unreadable directory or list) never stop the walk:
 * they become items whose `error` holds one sentence. Threads: not thread-safe; one list, one
 * thread.
 */
#ifndef S4KWS_AUDIO_WALK_H
#define S4KWS_AUDIO_WALK_H

#include <stddef.h>
#include <stdio.h>

struct walk_item {
	char *path;    /* the file's path as it should be reported */
	char *error;   /* NULL, or why this input yields no file */
};

struct walk_list {
	struct walk_item *items;   /* (n), in input order */
	size_t n, cap;
};

void walk_init(struct walk_list *wl);
void walk_fini(struct walk_list *wl);

/* Expand one input (see above) and append its files. `list_in` is read when arg is "-"
 * (may be NULL: "-" then becomes an error item). Returns 0, or -ENOMEM with a sentence in err
 * (the list keeps what was added so far). */
int walk_add(struct walk_list *wl, const char *arg, FILE *list_in, char *err, size_t errlen);

/* Append the audio files below one directory (as for DIR above) and return 0 or -ENOMEM.
 * An unreadable directory becomes an error item. */
int walk_dir(struct walk_list *wl, const char *dir, char *err, size_t errlen);

#endif
