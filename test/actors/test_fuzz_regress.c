/* Regression tests of the fuzz targets (docs/FUZZING.md): replay every target's committed
 * seeds (test/fuzz/corpus-<target>/) and every input a fuzzer ever crashed on
 * (test/fuzz/regress/<target>-<what it broke>; a file without a target prefix is
 * fuzz_session's) through the same code, in the normal test build: the session harness
 * (test/fuzz/harness.h) for the targets that drive a session, the target bodies of
 * test/fuzz/targets.h for the others. A replay that crashes fails the test; under
 * variant=asan, ASan and UBSan catch the memory errors the fuzzer found. To add a finding:
 * copy the crash-* file libFuzzer wrote into test/fuzz/regress/ under such a name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/harness.h"
#include "fuzz/targets.h"
#include "support/test.h"

#define INPUT_MAX (1u << 20) /* larger inputs are not fuzz findings (libFuzzer caps them) */

typedef int (*input_fn)(const uint8_t *data, size_t size);

static int session_in(const uint8_t *d, size_t n)
{
    return fuzz_family_input(FUZZ_FAM_ALL, d, n);
}

static int auth_in(const uint8_t *d, size_t n)
{
    return fuzz_family_input(FUZZ_FAM_AUTH, d, n);
}

static int msg_in(const uint8_t *d, size_t n)
{
    return fuzz_family_input(FUZZ_FAM_MSG, d, n);
}

static int conv_in(const uint8_t *d, size_t n)
{
    return fuzz_family_input(FUZZ_FAM_CONV, d, n);
}

static int group_in(const uint8_t *d, size_t n)
{
    return fuzz_family_input(FUZZ_FAM_GROUP, d, n);
}

/* The checkout's top directory: CIM_BIN_DIR is TOP/build/bin or TOP/build/VARIANT/bin. */
static void top_dir(char *out, size_t len)
{
    const char *bin = CIM_BIN_DIR, *p, *last = NULL;

    for (p = bin; (p = strstr(p, "/build/")) != NULL; p++)
        last = p;
    ASSERT_NOT_NULL(last);
    ASSERT_LT((size_t)(last - bin), len);
    snprintf(out, len, "%.*s", (int)(last - bin), bin);
}

static void replay_file(const char *path, input_fn fn)
{
    uint8_t *data = malloc(INPUT_MAX);
    ssize_t n;
    size_t have = 0;
    int fd;

    ASSERT_NOT_NULL(data);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        TEST_FAIL_("cannot open %s: %s", path, strerror(errno));
    while ((n = read(fd, data + have, INPUT_MAX - have)) > 0)
        have += (size_t)n;
    ASSERT_EQ(n, 0);
    ASSERT_LT(have, INPUT_MAX);
    close(fd);
    fprintf(stderr, "replaying %s (%zu bytes)\n", path, have);
    ASSERT_EQ(fn(data, have), 0);
    free(data);
}

static int is_input(const struct dirent *e)
{
    return e->d_name[0] != '.' && strncmp(e->d_name, "README", 6) != 0;
}

/* Is @p name (a file in test/fuzz/regress) an input of @p target? "fuzz_msg-..." is
 * fuzz_msg's; a name with no "fuzz_<target>-" prefix is fuzz_session's. */
static bool belongs(const char *name, const char *target)
{
    size_t n = strlen(target);

    if (strncmp(name, target, n) == 0 && name[n] == '-')
        return true;
    return strcmp(target, "fuzz_session") == 0 &&
           (strncmp(name, "fuzz_", 5) != 0 || strchr(name, '-') == NULL);
}

/* Replay the inputs of TOP/@p sub (only @p target's when @p target is not NULL), in name
 * order. @return how many. */
static int replay_dir(const char *top, const char *sub, const char *target, input_fn fn)
{
    char dir[1200], path[1500];
    struct dirent **names = NULL;
    struct stat st;
    int n, done = 0;

    snprintf(dir, sizeof(dir), "%s/%s", top, sub);
    if ((n = scandir(dir, &names, is_input, alphasort)) < 0) {
        ASSERT_EQ(errno, ENOENT);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if ((target == NULL || belongs(names[i]->d_name, target)) && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            replay_file(path, fn);
            done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

static void replay_target(const char *target, input_fn fn)
{
    char top[1024], corpus[128];

    top_dir(top, sizeof(top));
    snprintf(corpus, sizeof(corpus), "test/fuzz/corpus-%s", target);
    ASSERT_LT(0, replay_dir(top, corpus, NULL, fn));
    (void)replay_dir(top, "test/fuzz/regress", target, fn); /* none until a finding */
    ASSERT_OK(fuzz_session_cleanup()); /* a no-op for the targets without a server */
}

TEST_TIMEOUT(fuzz_regress_session, 60)
{
    replay_target("fuzz_session", session_in);
}

TEST_TIMEOUT(fuzz_regress_auth, 60)
{
    replay_target("fuzz_auth", auth_in);
}

TEST_TIMEOUT(fuzz_regress_msg, 60)
{
    replay_target("fuzz_msg", msg_in);
}

TEST_TIMEOUT(fuzz_regress_conv, 60)
{
    replay_target("fuzz_conv", conv_in);
}

TEST_TIMEOUT(fuzz_regress_group, 60)
{
    replay_target("fuzz_group", group_in);
}

TEST_TIMEOUT(fuzz_regress_handshake, 60)
{
    replay_target("fuzz_handshake", fuzz_handshake_input);
}

TEST(fuzz_regress_frame)
{
    replay_target("fuzz_frame", fuzz_frame_input);
}

TEST(fuzz_regress_token)
{
    replay_target("fuzz_token", fuzz_token_input);
}

TEST(fuzz_regress_admin)
{
    replay_target("fuzz_admin", fuzz_admin_input);
}

TEST(fuzz_regress_bus)
{
    replay_target("fuzz_bus", fuzz_bus_input);
}

TEST(fuzz_regress_busmsg)
{
    replay_target("fuzz_busmsg", fuzz_busmsg_input);
}
