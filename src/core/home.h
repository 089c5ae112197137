/**
 * home: which node of a cluster is the home of a user or group (docs/SCALING.md, "Home
 * nodes"). In core, not in the cluster actor, so that tools compute the same answer as
 * every cimd (cimbench --home-nodes connects each user to its home).
 *
 * Rendezvous (highest-random-weight) hashing, so that every node of every build agrees
 * and a node leaving the list moves only its own ids. The score of node n for (app, id) is
 *   fmix64(FNV-1a-64(app || 0x00 || id || 0x00 || n as 4 bytes, big-endian))
 * with FNV-1a's 64-bit offset basis 0xcbf29ce484222325 and prime 0x100000001b3, and
 * fmix64 MurmurHash3's 64-bit finalizer (k ^= k >> 33; k *= 0xff51afd7ed558ccd;
 * k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53; k ^= k >> 33). The home is the node with the
 * highest score; of equal scores, the smaller node id. An empty app is "default".
 *
 * Threading: pure functions; any thread.
 */
#ifndef CIM_CORE_HOME_H
#define CIM_CORE_HOME_H

#include <stddef.h>
#include <stdint.h>

/** The score of @p node for (@p app, @p id), as defined above. */
uint64_t home_score(const char *app, const char *id, uint32_t node);

/** Of @p n node ids (n >= 1), the home of (@p app, @p id): the highest home_score. */
uint32_t home_pick(const uint32_t *nodes, size_t n, const char *app, const char *id);

#endif
