/* cli: line editing and history for the shell on a terminal, with libedit.
 *
 * libedit's el_gets blocks, and the shell must keep serving its connection (pushes, the
 * heartbeat, reconnecting) while a line is being typed. So the shell uses libedit's
 * readline interface in callback mode: its poll loop calls cli__edit_read() whenever stdin
 * is readable, libedit reads what is there without waiting and calls back with each
 * finished line. That callback runs with the terminal back in its ordinary (cooked) mode,
 * so a command's output needs nothing special; output that comes between keystrokes (a
 * push, a reconnect note) first hides the prompt and the line being typed
 * (cli__edit_hide) and the loop redraws them after (cli__edit_show).
 *
 * History: at most EDIT_HISTORY_MAX lines, in $XDG_STATE_HOME/cim/history, else
 * ~/.local/state/cim/history (the XDG base directory default), mode 0600 since it holds
 * message text; rewritten after every line, so a shell that is killed loses nothing. A
 * line that starts with a blank is not kept (as in bash with ignorespace), nor is one
 * equal to the line before it.
 *
 * libedit's callback carries no context pointer: the one shell of this (single-threaded)
 * process is reached through the file-level `ed` below.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cmd/cim/cli_int.h"

#define EDIT_HISTORY_MAX 1000

static struct {
    bool active;   /* cli__edit_start succeeded and cli__edit_stop has not run */
    bool in_line;  /* inside the line callback: no prompt on screen, terminal cooked */
    bool hidden;   /* cli__edit_hide cleared the prompt line */
    bool restore;  /* hidden changed the terminal's output flags: put `saved` back */
    bool reprompt; /* a line was taken: start the next one (cli__edit_show) */
    struct termios saved;
    char path[PATH_MAX]; /* the history file, or "" for none */
    char *last;          /* the last line kept in the history (owned) */
    char prompt[64];
    cli__edit_line_cb on_line;
    void *ctx;
} ed;

/* "$XDG_STATE_HOME/cim/history" or "$HOME/.local/state/cim/history", creating the
 * directories (0700) on the way; "" when there is neither variable or it cannot be made. */
static void history_path(char *out, size_t n)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX];
    int len;

    out[0] = '\0';
    if (state != NULL && state[0] == '/')
        len = snprintf(dir, sizeof(dir), "%s/cim", state);
    else if (home != NULL && home[0] == '/')
        len = snprintf(dir, sizeof(dir), "%s/.local/state/cim", home);
    else
        return;
    if (len < 0 || (size_t)len >= sizeof(dir) - sizeof("/history"))
        return;
    /* every component, as mkdir -p would */
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return;
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return;
    if (snprintf(out, n, "%s/history", dir) >= (int)n)
        out[0] = '\0';
}

static void history_save(void)
{
    mode_t old;

    if (ed.path[0] == '\0')
        return;
    old = umask(077); /* a new file is 0600: it holds what was typed, message text too */
    if (write_history(ed.path) != 0) {
        cli__fail("cannot write the history to %s; not saving it any more", ed.path);
        ed.path[0] = '\0';
    }
    umask(old);
}

/* libedit's line callback: @p line is malloc'ed by libedit (ours to free), NULL at the
 * end of input (Ctrl-D on an empty line). */
static void on_line(char *line)
{
    ed.in_line = true;
    if (line != NULL && line[0] != '\0' && line[0] != ' ' &&
        (ed.last == NULL || strcmp(line, ed.last) != 0)) {
        add_history(line);
        free(ed.last);
        ed.last = strdup(line);
        history_save();
    }
    ed.on_line(line, ed.ctx);
    free(line);
    ed.in_line = false;
    ed.reprompt = true;
}

bool cli__edit_start(const char *prompt, cli__edit_line_cb cb, void *ctx)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return false;
    ed.on_line = cb;
    ed.ctx = ctx;
    rl_readline_name = "cim";
    using_history();
    stifle_history(EDIT_HISTORY_MAX);
    history_path(ed.path, sizeof(ed.path));
    if (ed.path[0] != '\0' && read_history(ed.path) == 0 && history_length > 0) {
        HIST_ENTRY *h = history_get(history_base + history_length - 1);
        if (h != NULL && h->line != NULL)
            ed.last = strdup(h->line); /* no repeat of it across runs either */
    } /* else none yet (a first run), or unreadable: start an empty one */
    snprintf(ed.prompt, sizeof(ed.prompt), "%s", prompt);
    rl_callback_handler_install(ed.prompt, on_line);
    ed.active = true;
    return true;
}

void cli__edit_read(void)
{
    rl_callback_read_char();
}

void cli__edit_prompt(const char *prompt)
{
    if (!ed.active)
        return;
    snprintf(ed.prompt, sizeof(ed.prompt), "%s", prompt);
    if (ed.in_line || ed.reprompt)
        return;                     /* the next line starts with it */
    (void)rl_set_prompt(ed.prompt); /* best effort: the old prompt stays on failure */
    if (!ed.hidden)
        rl_forced_update_display();
}

void cli__edit_hide(void)
{
    struct termios t;

    if (!ed.active || ed.in_line || ed.hidden || ed.reprompt)
        return;
    fflush(stdout);
    fputs("\r\033[K", stdout); /* the prompt and the line typed so far */
    fflush(stdout);
    /* libedit's raw mode may have turned output processing off: "\n" must start a line */
    ed.restore = false;
    if (tcgetattr(STDOUT_FILENO, &t) == 0 && (t.c_oflag & (OPOST | ONLCR)) != (OPOST | ONLCR)) {
        ed.saved = t;
        t.c_oflag |= OPOST | ONLCR;
        ed.restore = tcsetattr(STDOUT_FILENO, TCSADRAIN, &t) == 0;
    }
    ed.hidden = true;
}

void cli__edit_show(void)
{
    if (ed.reprompt) {
        /* libedit (3.1-20221030) leaves its line mode after the callback: the next key
         * would block until a whole line is typed. Installing the handler again goes back
         * to reading a key at a time, and starts the new line with the prompt. */
        ed.reprompt = false;
        ed.hidden = false;
        rl_callback_handler_install(ed.prompt, on_line);
        return;
    }
    if (!ed.hidden)
        return;
    fflush(stdout);
    fflush(stderr);
    if (ed.restore)
        (void)tcsetattr(STDOUT_FILENO, TCSADRAIN, &ed.saved); /* best effort: it was so */
    ed.hidden = false;
    rl_forced_update_display(); /* the prompt and the line as it was */
}

void cli__edit_stop(void)
{
    if (!ed.active)
        return;
    fflush(stdout);
    rl_callback_handler_remove(); /* the terminal as it was when the shell started */
    ed.hidden = ed.reprompt = false;
    ed.active = false;
    free(ed.last);
    ed.last = NULL;
}
