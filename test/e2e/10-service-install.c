/* Integration: the installed tree (etc/SConscript), as a user of it sees it.
 *
 * The tree is the one `scons` stages for this variant in build/<variant>/stage (DESTDIR
 * there, the build's PREFIX), or, when CIM_INSTALL_ROOT is set, one a real
 * `scons install DESTDIR=$CIM_INSTALL_ROOT` made (tools/bootstrap test does both).
 *
 *  - install_client_builds_with_pkg_config: `pkg-config --cflags --libs cim`, with
 *    PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR pointing into the tree, builds
 *    test/install/client.c against the installed header alone and the shared libcim
 *    (libcim.so.X by its soname), and the program logs in to a real cimd with a minted
 *    token and gets SEND_ACK OK; the same again linked statically (libcim.a with
 *    `pkg-config --static --libs`), which checks Requires.private / Libs.private.
 *  - install_unit_verifies: `systemd-analyze verify` accepts the installed cimd.service,
 *    with no warning, in a root holding systemd's own units and the installed cimd.
 *  - install_tree_complete: every file the README promises is there, man pages render.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/chan.h"
#include "support/server.h"
#include "support/test.h"

static const char *root(void)
{
    const char *r = getenv("CIM_INSTALL_ROOT");
    return r != NULL && r[0] != '\0' ? r : CIM_STAGE_DIR;
}

/* Run @p cmd with /bin/sh, stdout and stderr into @p out. @return the exit status. */
static int sh(char *out, size_t outlen, const char *cmd)
{
    FILE *p;
    size_t n = 0;
    int st;

    fflush(NULL);
    p = popen(cmd, "r");
    ASSERT_NOT_NULL(p);
    while (n + 1 < outlen && fgets(out + n, (int)(outlen - n), p) != NULL)
        n += strlen(out + n);
    out[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_file(const char *rel)
{
    char path[1024];
    struct stat sb;

    snprintf(path, sizeof(path), "%s%s", root(), rel);
    if (stat(path, &sb) != 0)
        TEST_FAIL_("installed tree lacks %s (%s)", rel, strerror(errno));
}

TEST_TIMEOUT(install_tree_complete, 30)
{
    static const struct {
        const char *dir, *name;
    } files[] = {
        {CIM_STAGE_PREFIX, "/bin/cimd"},          {CIM_STAGE_PREFIX, "/bin/cim"},
        {CIM_STAGE_PREFIX, "/bin/cimctl"},        {CIM_STAGE_PREFIX, "/bin/cimdump"},
        {CIM_STAGE_PREFIX, "/bin/cimbench"},      {CIM_STAGE_PREFIX, "/include/cim/cim.h"},
        {CIM_STAGE_PREFIX, "/include/cim/cim.pb.h"},
        {CIM_STAGE_PREFIX, "/include/cim/core/frame_type.h"},
        {CIM_STAGE_PREFIX, "/share/man/man8/cimd.8"},
        {CIM_STAGE_PREFIX, "/share/man/man1/cim.1"},
        {CIM_STAGE_PREFIX, "/share/man/man8/cimctl.8"},
        {CIM_STAGE_PREFIX, "/share/man/man8/cimdump.8"},
        {CIM_STAGE_PREFIX, "/share/man/man1/cimbench.1"},
        {CIM_STAGE_LIBDIR, "/libcim.so"},         {CIM_STAGE_LIBDIR, "/libcim.a"},
        {CIM_STAGE_LIBDIR, "/pkgconfig/cim.pc"},  {CIM_STAGE_UNITDIR, "/cimd.service"},
    };
    char rel[512], cmd[2048], out[4096];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(rel, sizeof(rel), "%s%s", files[i].dir, files[i].name);
        expect_file(rel);
    }
    /* The installed cimd is a working one, and the example config is one it accepts. */
    snprintf(cmd, sizeof(cmd), "'%s%s/bin/cimd' --version", root(), CIM_STAGE_PREFIX);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_TRUE(strncmp(out, "cimd ", 5) == 0);
    snprintf(cmd, sizeof(cmd), "find '%s' -name cimd.conf.example | head -1", root());
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_TRUE(strstr(out, "/cim/cimd.conf.example\n") != NULL);
    /* A man page is roff that man(1) can render, with its NAME section. */
    snprintf(cmd, sizeof(cmd), "head -c 4096 '%s%s/share/man/man8/cimctl.8'", root(),
             CIM_STAGE_PREFIX);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_NOT_NULL(strstr(out, ".TH \"cimctl\" \"8\""));
    ASSERT_NOT_NULL(strstr(out, "backup"));
}

/* Build test/install/client.c with the tree's pkg-config file; @p libs is the link part. */
static void build_client(const char *exe, const char *libs)
{
    char cmd[4096], out[8192];

    snprintf(cmd, sizeof(cmd),
             "export PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_PATH='%s%s/pkgconfig' && "
             "gcc %s -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic "
             "-o '%s' '%s/test/install/client.c' $(pkg-config --cflags cim) %s 2>&1",
             root(), root(), CIM_STAGE_LIBDIR, CIM_SAN_FLAGS, exe, CIM_SRC_DIR, libs);
    if (sh(out, sizeof(out), cmd) != 0)
        TEST_FAIL_("building the client against the installed tree failed:\n%s\n%s", cmd, out);
}

TEST_TIMEOUT(install_client_builds_with_pkg_config, 120)
{
    char dir[] = "/tmp/cimtest-XXXXXX", exe[64], cmd[4096], out[8192], hex[65], tok[256];
    char libs[1024];
    tsrv_t t;

    ASSERT_NOT_NULL(mkdtemp(dir));
    /* pkg-config itself: the flags point into the tree. */
    snprintf(cmd, sizeof(cmd),
             "PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_PATH='%s%s/pkgconfig' "
             "pkg-config --cflags --libs cim 2>&1", root(), root(), CIM_STAGE_LIBDIR);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    snprintf(libs, sizeof(libs), "-I%s%s/include/cim ", root(), CIM_STAGE_PREFIX);
    ASSERT_NOT_NULL(strstr(out, libs));
    snprintf(libs, sizeof(libs), "-L%s%s ", root(), CIM_STAGE_LIBDIR);
    ASSERT_NOT_NULL(strstr(out, libs));
    ASSERT_NOT_NULL(strstr(out, "-lcim"));

    tsrv_start(&t, NULL);
    chan_hex(t.key, hex);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "add", "bob",
                            NULL), 0);
    tsrv_token(&t, "", "alice", 600, tok, sizeof(tok));

    /* Shared: libcim.so.X named by its soname, found through LD_LIBRARY_PATH. */
    snprintf(exe, sizeof(exe), "%s/client", dir);
    build_client(exe, "$(pkg-config --libs cim)");
    snprintf(cmd, sizeof(cmd), "readelf -d '%s' | grep NEEDED", exe);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_NOT_NULL(strstr(out, "[libcim.so.0]"));
    snprintf(cmd, sizeof(cmd), "LD_LIBRARY_PATH='%s%s' '%s' %d %s alice '%s' bob 2>&1", root(),
             CIM_STAGE_LIBDIR, exe, t.port, hex, tok);
    if (sh(out, sizeof(out), cmd) != 0)
        TEST_FAIL_("the client built on the installed libcim failed: %s", out);
    ASSERT_TRUE(strncmp(out, "SEND_ACK OK ", 12) == 0);
    ASSERT_TRUE(strtoull(out + 12, NULL, 10) > 0);

    /* Static: libcim.a (-l:libcim.a for pkg-config's -lcim) and what `pkg-config --static`
     * adds for it; no libcim.so needed. */
    snprintf(exe, sizeof(exe), "%s/client-static", dir);
    build_client(exe, "$(pkg-config --static --libs cim | sed 's/-lcim /-l:libcim.a /')");
    snprintf(cmd, sizeof(cmd), "readelf -d '%s' | grep -c 'libcim\\.so' || true", exe);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_STREQ(out, "0\n");
    snprintf(cmd, sizeof(cmd), "'%s' %d %s alice '%s' bob 2>&1", exe, t.port, hex, tok);
    if (sh(out, sizeof(out), cmd) != 0)
        TEST_FAIL_("the client built on the installed libcim.a failed: %s", out);
    ASSERT_TRUE(strncmp(out, "SEND_ACK OK ", 12) == 0);

    ASSERT_EQ(tsrv_stop(&t), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST_TIMEOUT(install_unit_verifies, 60)
{
    char tmp[] = "/tmp/cimtest-XXXXXX", cmd[4096], out[8192];

    if (sh(out, sizeof(out), "command -v systemd-analyze") != 0) {
        fprintf(stderr, "install_unit_verifies: SKIPPED: systemd-analyze is not installed "
                        "(Debian package systemd, in tools/bootstrap's PACKAGES)\n");
        return;
    }
    ASSERT_NOT_NULL(mkdtemp(tmp));
    /* A root for --root: systemd's own units (the targets the unit's default dependencies
     * name) and the installed unit and cimd at their installed paths. */
    snprintf(cmd, sizeof(cmd),
             "set -e; mkdir -p '%s/usr/lib/systemd' '%s%s' '%s%s/bin'; "
             "cp -a /usr/lib/systemd/system '%s/usr/lib/systemd/'; "
             "cp '%s%s/cimd.service' '%s%s/'; cp '%s%s/bin/cimd' '%s%s/bin/' 2>&1",
             tmp, tmp, CIM_STAGE_UNITDIR, tmp, CIM_STAGE_PREFIX, tmp, root(), CIM_STAGE_UNITDIR,
             tmp, CIM_STAGE_UNITDIR, root(), CIM_STAGE_PREFIX, tmp, CIM_STAGE_PREFIX);
    if (sh(out, sizeof(out), cmd) != 0)
        TEST_FAIL_("cannot build the verify root: %s", out);
    snprintf(cmd, sizeof(cmd), "systemd-analyze verify --man=no --root='%s' '%s/cimd.service' 2>&1",
             tmp, CIM_STAGE_UNITDIR);
    int st = sh(out, sizeof(out), cmd);
    if (st != 0 || out[0] != '\0')
        TEST_FAIL_("systemd-analyze verify: exit %d, said:\n%s", st, out);
    /* What the unit promises. */
    snprintf(cmd, sizeof(cmd), "cat '%s%s/cimd.service'", root(), CIM_STAGE_UNITDIR);
    ASSERT_EQ(sh(out, sizeof(out), cmd), 0);
    ASSERT_NOT_NULL(strstr(out, "\nType=notify\n"));
    ASSERT_NOT_NULL(strstr(out, "\nExecStart=" CIM_STAGE_PREFIX "/bin/cimd "));
    ASSERT_NOT_NULL(strstr(out, " --data /var/lib/cim\n"));
    ASSERT_NOT_NULL(strstr(out, "\nStateDirectory=cim\n"));
    ASSERT_NOT_NULL(strstr(out, "\nWatchdogSec="));
    ASSERT_NOT_NULL(strstr(out, "\nDynamicUser=yes\n"));
    ASSERT_NOT_NULL(strstr(out, "\nProtectSystem=strict\n"));
    for (const char *p = out; (p = strchr(p, '@')) != NULL; p++) /* every @DIR@ filled in */
        if (p[1] >= 'A' && p[1] <= 'Z')
            TEST_FAIL_("cimd.service keeps a placeholder: %.20s", p);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ASSERT_EQ(system(cmd), 0);
}
