/* Regression test of the session fuzz target (test/fuzz/harness.h): replay the committed
 * seeds (test/fuzz/corpus-fuzz_session/) and every input a fuzzer ever crashed on
 * (test/fuzz/regress/, one file per finding) through the same harness, in the normal test
 * build. A replay that crashes fails the test; under variant=asan, ASan and UBSan catch
 * the memory errors the fuzzer found. To add a finding: copy the crash-* file libFuzzer
 * wrote into test/fuzz/regress/ under a name that says what it broke. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/harness.h"
#include "support/test.h"

#define INPUT_MAX (1u << 20) /* larger inputs are not fuzz findings (libFuzzer caps them) */

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

static void replay_file(const char *path)
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
    ASSERT_EQ(fuzz_session_input(data, have), 0);
    free(data);
}

static int is_input(const struct dirent *e)
{
    return e->d_name[0] != '.' && strncmp(e->d_name, "README", 6) != 0;
}

/* Replay every input in TOP/@p sub, in name order. @return how many. */
static int replay_dir(const char *top, const char *sub)
{
    char dir[1200], path[1500];
    struct dirent **names = NULL;
    struct stat st;
    int n;

    snprintf(dir, sizeof(dir), "%s/%s", top, sub);
    if ((n = scandir(dir, &names, is_input, alphasort)) < 0) {
        ASSERT_EQ(errno, ENOENT);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            replay_file(path);
        free(names[i]);
    }
    free(names);
    return n;
}

TEST_TIMEOUT(fuzz_regress_corpus, 60)
{
    char top[1024];

    top_dir(top, sizeof(top));
    ASSERT_LT(0, replay_dir(top, "test/fuzz/corpus-fuzz_session"));
    (void)replay_dir(top, "test/fuzz/regress"); /* empty until a fuzzer finds something */
    ASSERT_OK(fuzz_session_cleanup());
}
