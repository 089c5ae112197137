/**
 * cli: the cim command-line client's internals, shared by its files (private to the `cim`
 * program; nothing else includes this header).
 *
 * Layout, one file per command family as the server splits its request families
 * (src/actors/session_*.c):
 *   main.c     options, the command table, --help, the one-shot run
 *   cmd.c      dispatch helpers, argument checks, how a command reports (fail, note)
 *   print.c    the one-line output formats (messages, events, groups, conversations)
 *   session.c  device ids, connecting and logging in, pushes; login/whoami, ping
 *   msg.c      send, typing, sync, timeline, listen, recall
 *   conv.c     convs, history, read
 *   group.c    group create|join|add|leave|kick|dismiss|members|list
 *   contact.c  contacts, contact add|remove, block, unblock
 *   shell.c    the interactive shell
 *
 * Commands. Every command is one row of the table in main.c: its name, handler, argument
 * synopsis and one line of help. The one-shot command line and the shell both dispatch
 * through that table. A command with subcommands (group create ..., contact add ...)
 * points its row at a table of its own (`sub`) and its handler is cli__cmd_sub. A handler
 * gets argv with argv[0] = its name (a subcommand: its own name, e.g. "create"), may parse
 * options with getopt_long (the dispatcher has called cli__getopt_reset()), reports its
 * failures itself with cli__fail() and returns EXIT_OK, EXIT_FAIL or EXIT_USAGE. A request
 * the server refuses is reported as "cim: <what> refused: CODE: reason" and exits 1.
 *
 * Output. Messages print one per line, the same way everywhere (sync, timeline, history,
 * listen, the shell's pushes):
 *   <msg_id> <time ISO 8601> <from> -> <to> [<type>] <body>
 * with <to> a user id, or #<group id> for a group; the body as text when it is printable
 * UTF-8 (\ and newline escaped as \\ and \n), else <N bytes: HEX> (the first 32 bytes).
 * Pushes that are not ordinary messages print as tagged lines (listen, the shell):
 *   [read] <user> read <peer or #group> up to <msg_id>
 *   [presence] <user> online|offline
 *   [typing] <from> -> <to>          (a transient CUSTOM message: the typing convention)
 *   [recall] <msg_id> by <user>      (a RECALL message)
 * In one-shot mode stdout carries only the command's own output (scripts parse it):
 * pushes are dropped, or shown on stderr with -v; `listen` is the command that prints
 * them.
 *
 * Threading: one thread; the connection is libcim's blocking API.
 */
#ifndef CIM_CMD_CIM_CLI_INT_H
#define CIM_CMD_CIM_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/cim.h"
#include "core/chan.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define CMD_ONLINE     0x1 /* needs a logged-in connection */
#define CMD_NOT_SHELL  0x2 /* meaningless inside the shell */
#define CMD_SHELL_ONLY 0x4 /* meaningless on the command line */
#define CMD_PUSHES     0x8 /* reads the pushes itself: leave them queued for it */
/* Which device id a command logs in with when --device is not given (cli__pick_device). */
#define CMD_CURSOR       0x10 /* reads or moves this device's delivery cursor: cli-<host> */
#define CMD_SHELL_DEVICE 0x20 /* the interactive shell: cli-<host>-shell */

typedef struct cmd cmd_t;

/** The client's state: options, then the connection and what the shell keeps. */
typedef struct cli {
    const char *host;
    int port;
    bool has_key;
    bool tofu;
    uint8_t key[CHAN_KEY];
    unsigned timeout_ms; /* 0: libcim's default */
    const char *app;
    const char *user;
    const char *token;
    char device[65];
    cim_DeviceKind kind;
    bool verbose;

    cimc_t *c; /* the connection once online */
    cim_LoginRsp session;
    uint64_t acked;          /* this device's delivery cursor as far as we moved or saw it */
    uint64_t dup_lo, dup_hi; /* msg_ids the last sync printed: pushes among them repeat it */
    uint64_t seen;           /* the newest msg_id pushed or synced (or latest at login) */
    bool in_shell;
    bool tty;            /* the shell edits lines on a terminal (edit.c) */
    bool quit;           /* the shell should end */
    const cmd_t *parent; /* while a subcommand runs: its command (group, contact) */
} cli_t;

/** One row of a command table. */
struct cmd {
    const char *name;
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *args; /* synopsis after the name */
    const char *help; /* one line */
    unsigned flags;   /* CMD_* */
    const cmd_t *sub; /* subcommands (run is cli__cmd_sub), or NULL */
};

/* ---- main.c -------------------------------------------------------------------------- */

/** The row of the top-level table named @p name ("exit" is "quit"), or NULL. */
const cmd_t *cli__find_cmd(const char *name);

/* ---- cmd.c: reporting ------------------------------------------------------------------ */

/** One line on stderr, prefixed "cim: " (stdout is flushed first). */
void cli__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** An informational line on stderr, prefixed "cim: " (stdout stays the command's output). */
void cli__note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Report a failed request on the connection (rc < 0), naming the BYE when there was one. */
void cli__fail_rc(const cli_t *cli, const char *what, int rc);

/**
 * The outcome of a request: @p rc of the call (reported with cli__fail_rc), then the
 * @p code of its answer ("<what> refused: CODE: reason"). @return EXIT_OK or EXIT_FAIL.
 */
int cli__check(cli_t *cli, const char *what, int rc, cim_Code code, const char *reason);

/**
 * A request of frame @p type answered by a Result (frame type + 1), checked as
 * cli__check. @return EXIT_OK or EXIT_FAIL (reported).
 */
int cli__call_result(cli_t *cli, const char *what, uint32_t type, const pb_msgdesc_t *fields,
                     void *req);

/* ---- cmd.c: dispatch and arguments ------------------------------------------------------ */

/** Reset getopt before a handler parses its own options (argv[0] is the command name). */
void cli__getopt_reset(void);

/** For a handler that takes no arguments. @return EXIT_OK, or EXIT_USAGE (reported). */
int cli__no_args(const cmd_t *cmd, int argc, char **argv);

/** "cim: usage: NAME ARGS". @return EXIT_USAGE. */
int cli__cmd_usage(const cmd_t *cmd);

/**
 * The usage of the row named @p name, among the running command's subcommands first
 * ("cim: usage: group create NAME [--open] [MEMBER...]"). @return EXIT_USAGE.
 */
int cli__usage_of(const cli_t *cli, const char *name);

/** The handler of a command with subcommands: runs the one named by argv[1]. */
int cli__cmd_sub(cli_t *cli, int argc, char **argv);

/**
 * @p s, the value of option @p name, as a number in [min, max].
 * @return 0, or -1 after printing "<name>: expected <expected>, got '<s>'".
 */
int cli__arg_u64(const char *name, const char *s, uint64_t min, uint64_t max, const char *expected,
                 uint64_t *out);

/** --limit N: 1..@p max messages per page. @return 0, or -1 (reported). */
int cli__arg_limit(const char *s, uint32_t max, uint32_t *limit);

/** Whether @p s is a group id as the server assigns them (1..19 digits, no leading 0). */
bool cli__group_id_ok(const char *s);

/** Check a --group / --with argument. @return true, or false (a usage error reported). */
bool cli__peer_arg_ok(const char *what, bool group, const char *s);

/** Check the USER... words of a command: at least one, each 1..64 bytes. @return EXIT_*. */
int cli__users_ok(const cli_t *cli, const char *name, int n, char **users);

/** Milliseconds on the monotonic clock. */
int64_t cli__mono_ms(void);

/* ---- print.c ----------------------------------------------------------------------------- */

const char *cli__kind_name(cim_DeviceKind k);

/** @return 0 with the kind named @p s (mobile, desktop, web, bot) in @p out, or -1. */
int cli__kind_parse(const char *s, cim_DeviceKind *out);

const char *cli__conv_name(cim_ConvType t);

/** @return 0 with the type named @p s (text .. custom) in @p out, or -1. */
int cli__msg_type_parse(const char *s, cim_MsgType *out);

/** "2026-11-22T01:02:32.364Z" into @p out (@p n bytes). */
void cli__fmt_time_ms(uint64_t ms, char *out, size_t n);

/** One message, one line (the format above). */
void cli__print_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len);

/** A transient CUSTOM message (msg_id 0): the typing convention. */
bool cli__is_typing(const cim_Message *m);

/** A pushed message: typing indicators and recalls as tagged lines, others as print_msg. */
void cli__print_pushed_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len);

/** An EVENT as a tagged line; a READ named from the reader's side. */
void cli__print_event(const cli_t *cli, FILE *f, const cim_Event *e);

/** Any push (PUSH, EVENT, BYE), over the shell's prompt when that is on stdout. */
void cli__print_push(const cli_t *cli, FILE *f, const cimc_push_t *p);

/** "<id> <name> owner=<user> members=<n> open|closed" */
void cli__print_group(FILE *f, const cim_Group *g);

/**
 * "<type> <peer> unread=<n> read=<id> [peer_read=<id>] last: <id> <time> <from> [<type>]
 * <body, cut>" (or "last: -").
 */
void cli__print_conv(FILE *f, const cim_Conversation *cv, const uint8_t *body, size_t len);

/* ---- session.c --------------------------------------------------------------------------- */

/**
 * The device id @p cmd logs in with when no --device is given, into @p out (@p n >= 65):
 *  - CMD_CURSOR commands (sync, listen): "cli-<host>", this host's command-line device,
 *    whose delivery cursor (PUSH_ACK) carries over from one run to the next;
 *  - the shell (CMD_SHELL_DEVICE): "cli-<host>-shell", its own device, so that no one-shot
 *    command kicks it (PROTOCOL.md §6: a login with the device of a live session kicks
 *    that session) and a second shell on the host replaces the first;
 *  - every other command: "cli-<host>-<8 random hex>", fresh per run. Such a run never
 *    acknowledges anything, so the server keeps no cursor for it (cursors are written by
 *    PUSH_ACK only) and nothing accumulates however many runs there are.
 * The host name is cut so that the id stays within 64 bytes.
 */
void cli__pick_device(const cmd_t *cmd, char *out, size_t n);

/**
 * Connect and log in (a no-op when online). With --tofu, the key the server showed is
 * pinned from then on (a reconnect must meet the same one).
 * @param[out] retryable  may be NULL; on failure: whether trying again later may succeed
 *                        (the server was unreachable, busy or stopping), or not (another
 *                        server key, a login refused as UNAUTHORIZED or BAD_REQUEST).
 * @return EXIT_OK (cli->c and cli->session set), or EXIT_FAIL (reported; cli->c NULL).
 */
int cli__go_online(cli_t *cli, bool *retryable);

/**
 * Take every push queued so far: the shell prints them (but for messages the last sync
 * printed already); one-shot mode shows them on stderr with -v only.
 */
void cli__drain_pushes(cli_t *cli);

/* ---- msg.c ------------------------------------------------------------------------------- */

/** What a sync printed. */
typedef struct sync_out {
    size_t n;             /* messages printed */
    uint64_t first, last; /* their ids */
    uint64_t last_msg_id; /* SyncRsp.last_msg_id of the last page */
    uint32_t remain;      /* SyncRsp.remain of the last page */
} sync_out_t;

/**
 * SYNC from @p after (0: the server's cursor for this device), pages of @p limit (0: the
 * server's default), printing every message on stdout (and raising cli->seen); with
 * @p all, ask again while remain > 0. Acknowledges nothing.
 * @return EXIT_OK, or EXIT_FAIL (reported as @p what).
 */
int cli__sync_run(cli_t *cli, const char *what, uint64_t after, uint32_t limit, bool all,
                  sync_out_t *o);

/* ---- edit.c: line editing on a terminal (libedit) ----------------------------------------- */

/** A finished line (borrowed for the call), or NULL at the end of input (Ctrl-D). */
typedef void (*cli__edit_line_cb)(char *line, void *ctx);

/**
 * Start editing lines with @p prompt when stdin and stdout are both terminals: load the
 * history, show the prompt. @p cb gets every line; it runs with the terminal in its
 * ordinary mode, so what it prints needs no care. @return false (nothing done) when
 * stdin or stdout is not a terminal.
 */
bool cli__edit_start(const char *prompt, cli__edit_line_cb cb, void *ctx);

/** stdin is readable: let libedit take what is there (never blocks on a poll'ed fd). */
void cli__edit_read(void);

/** Show @p prompt (copied) from now on. */
void cli__edit_prompt(const char *prompt);

/**
 * Before printing anything between keystrokes (a push, a note): clear the prompt and
 * the line typed so far, once. A no-op unless editing and waiting for keys.
 */
void cli__edit_hide(void);

/** After such output: draw the prompt and the line again. A no-op unless hidden. */
void cli__edit_show(void);

/** Stop editing: the terminal as it was. A no-op unless started. */
void cli__edit_stop(void);

/* ---- command handlers (the table in main.c) ----------------------------------------------- */

int cli__cmd_session(cli_t *cli, int argc, char **argv);
int cli__cmd_ping(cli_t *cli, int argc, char **argv);
int cli__cmd_send(cli_t *cli, int argc, char **argv);
int cli__cmd_sync(cli_t *cli, int argc, char **argv);
int cli__cmd_timeline(cli_t *cli, int argc, char **argv);
int cli__cmd_listen(cli_t *cli, int argc, char **argv);
int cli__cmd_recall(cli_t *cli, int argc, char **argv);
int cli__cmd_typing(cli_t *cli, int argc, char **argv);
int cli__cmd_convs(cli_t *cli, int argc, char **argv);
int cli__cmd_history(cli_t *cli, int argc, char **argv);
int cli__cmd_read(cli_t *cli, int argc, char **argv);
int cli__cmd_group_create(cli_t *cli, int argc, char **argv);
int cli__cmd_group_join(cli_t *cli, int argc, char **argv);
int cli__cmd_group_add(cli_t *cli, int argc, char **argv);
int cli__cmd_group_leave(cli_t *cli, int argc, char **argv);
int cli__cmd_group_kick(cli_t *cli, int argc, char **argv);
int cli__cmd_group_dismiss(cli_t *cli, int argc, char **argv);
int cli__cmd_group_members(cli_t *cli, int argc, char **argv);
int cli__cmd_group_list(cli_t *cli, int argc, char **argv);
int cli__cmd_contacts(cli_t *cli, int argc, char **argv);
int cli__cmd_contact_add(cli_t *cli, int argc, char **argv);
int cli__cmd_contact_remove(cli_t *cli, int argc, char **argv);
int cli__cmd_block(cli_t *cli, int argc, char **argv);
int cli__cmd_unblock(cli_t *cli, int argc, char **argv);
int cli__cmd_shell(cli_t *cli, int argc, char **argv);
int cli__cmd_quit(cli_t *cli, int argc, char **argv);

#endif
