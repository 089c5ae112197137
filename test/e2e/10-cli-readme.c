/* Integration: the README's examples, pasted in order on a fresh data directory.
 *
 * The README marks the code blocks a reader pastes in order with a line
 * `<!-- readme-test -->` just before them (a block meant for another terminal, such as
 * the interactive shell: `<!-- readme-test: background -->`). This test reads README.md,
 * takes those blocks in order and runs them, verbatim, as one bash script (set -eu, so
 * every command must succeed) in a sandbox that looks like the top of the tree to them:
 * build/bin/ holds the programs of this variant (cim through a wrapper that adds --port,
 * since the server runs on a free port) and `data` is the fresh cimd's data directory.
 * A background block runs with a pipe on its stdin that first says "ping", stays open
 * until the end, and the script waits for its answer before going on; at the end it must
 * still be running (nothing in the README kicked alice's shell) and must have shown
 * alice's message to bob. Then the claims the README's comments make about the output
 * are checked. A README edit that breaks the order (an id only the author's data has, a
 * variable set later, a command that fails) fails this test. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/server.h"
#include "support/test.h"

#define MARK    "<!-- readme-test"
#define OUT_CAP (256 * 1024)

/* Append the README's marked blocks to @p script as described above. @return the count. */
static int script_blocks(FILE *readme, FILE *script)
{
    char line[4096];
    int n = 0, bg = 0;

    while (fgets(line, sizeof(line), readme) != NULL) {
        bool background;
        if (strncmp(line, MARK, strlen(MARK)) != 0)
            continue;
        background = strstr(line, "background") != NULL;
        ASSERT_NOT_NULL(fgets(line, sizeof(line), readme));
        ASSERT_STREQ(line, "```sh\n"); /* the mark stands right before a sh block */
        fprintf(script, "\n# ---- README block %d%s\n", ++n, background ? " (background)" : "");
        if (background)
            fprintf(script, "{ echo ping; sleep 120; } | {\n");
        while (fgets(line, sizeof(line), readme) != NULL && strcmp(line, "```\n") != 0)
            fputs(line, script);
        if (background) {
            bg++;
            fprintf(script,
                    "} >bg%d.out 2>bg%d.err &\n"
                    "BG=\"$BG $(jobs -p %%%%)\"\n"
                    "for i in $(seq 100); do grep -q '^pong from' bg%d.out && break; sleep 0.1; "
                    "done\n"
                    "grep -q '^pong from' bg%d.out || { echo 'background block %d did not log "
                    "in'; cat bg%d.err; exit 1; }\n",
                    bg, bg, bg, bg, n, bg);
        }
    }
    return n;
}

/* Read all of @p path into @p out (at most @p cap - 1 bytes). */
static void slurp(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ASSERT_NOT_NULL(f);
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

TEST_TIMEOUT(e2e_readme_examples, 120)
{
    tsrv_t t;
    char dir[] = "/tmp/cimtest-readme-XXXXXX", path[512], cmd[1024];
    char *out = malloc(OUT_CAP);
    FILE *readme, *f;
    int rc, n;

    ASSERT_NOT_NULL(out);
    tsrv_start(&t, NULL);
    ASSERT_NOT_NULL(mkdtemp(dir));

    /* the sandbox: build/bin/ and data, as at the top of the tree */
    snprintf(path, sizeof(path), "%s/build", dir);
    ASSERT_OK(mkdir(path, 0700));
    snprintf(path, sizeof(path), "%s/build/bin", dir);
    ASSERT_OK(mkdir(path, 0700));
    snprintf(path, sizeof(path), "%s/build/bin/cim", dir);
    ASSERT_NOT_NULL(f = fopen(path, "w"));
    fprintf(f, "#!/bin/sh\nexec %s/cim --port %d \"$@\"\n", CIM_BIN_DIR, t.port);
    ASSERT_OK(fclose(f));
    ASSERT_OK(chmod(path, 0755));
    for (const char *const *p = (const char *const[]){"cimctl", "cimdump", NULL}; *p; p++) {
        char target[512];
        snprintf(target, sizeof(target), "%s/%s", CIM_BIN_DIR, *p);
        snprintf(path, sizeof(path), "%s/build/bin/%s", dir, *p);
        ASSERT_OK(symlink(target, path));
    }
    snprintf(path, sizeof(path), "%s/data", dir);
    ASSERT_OK(symlink(t.dir, path));

    /* the script: the marked blocks in order, then what must hold at the end */
    snprintf(path, sizeof(path), "%s/readme.sh", dir);
    ASSERT_NOT_NULL(f = fopen(path, "w"));
    fprintf(f, "set -eu -o pipefail\n"
               "set -m  # each background job in a process group of its own\n"
               "BG=\n"
               "stop() { for g in $(jobs -p); do kill -TERM -- -\"$g\" 2>/dev/null || :; done; }\n"
               "trap stop EXIT TERM INT\n"
               "export CIM_ADMIN=127.0.0.1:%d  # the admin listener's free port\n",
            t.admin_port);
    ASSERT_NOT_NULL(readme = fopen(CIM_SRC_DIR "/README.md", "r"));
    n = script_blocks(readme, f);
    fclose(readme);
    ASSERT_TRUE(n >= 4);
    fprintf(f,
            "\n# ---- checks\n"
            "for g in $BG; do kill -0 -- -\"$g\" || { echo 'a background block ended early'; "
            "cat bg*.err; exit 1; }; done\n"
            "grep -q ' alice -> bob \\[text\\] hi$' bg1.out || "
            "{ echo 'the shell did not show alice'\\''s message'; cat bg1.out bg1.err; exit 1; }\n"
            "if grep -q KICKED bg1.err; then cat bg1.err; exit 1; fi\n"
            "echo README-OK\n");
    ASSERT_OK(fclose(f));

    snprintf(cmd, sizeof(cmd), "cd %s && timeout -k 5 90 bash readme.sh >out.txt 2>&1", dir);
    rc = system(cmd);
    snprintf(path, sizeof(path), "%s/out.txt", dir);
    slurp(path, out, OUT_CAP);
    if (rc != 0 || strstr(out, "README-OK") == NULL) {
        fprintf(stderr, "---- README script output ----\n%s\n----\n", out);
        tsrv_dump_log(&t);
        TEST_FAIL_("the README's examples failed (status %d)", rc);
    }
    /* what the README's comments say the commands print */
    ASSERT_NOT_NULL(strstr(out, "pong from 127.0.0.1:"));
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] hi\n")); /* bob's listen and sync */
    ASSERT_NOT_NULL(strstr(out, "\nalice (owner)\nbob\ncarol\n"));
    ASSERT_NOT_NULL(strstr(out, "\ntotal unread: 2\n"));
    ASSERT_NOT_NULL(strstr(out, "\nbob online\n"));
    ASSERT_NOT_NULL(strstr(out, "\"recalled\":true"));

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
    free(out);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
