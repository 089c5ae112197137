/* admin_node: GET /v1/node — which node this is, its cluster, the bus and the peers
 * (docs/ADMIN-API.md). Read from the cluster actor's atomics: no lock, no wait. */
#include "actors/admin_int.h"
#include "actors/cluster.h"

int admin_node(admin_t *a, h2o_req_t *req)
{
    const cluster_t *c = a->srv->cluster;
    const uint32_t *ids;
    size_t n = cluster_nodes(c, &ids);
    json_t *nodes = json_array();

    if (!admin_metrics_auth(a, req)) {
        json_decref(nodes);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(nodes, json_pack("{s:I, s:b, s:b}", "id", (json_int_t)ids[i],
                                               "alive", cluster_node_alive(c, ids[i]), "self",
                                               ids[i] == cluster_self(c)));
    return admin_json(req, 200,
                      json_pack("{s:I, s:o, s:s, s:o}", "node_id", (json_int_t)cluster_self(c),
                                "cluster",
                                cluster_is_enabled(c) ? json_string(cluster_name(c)) : json_null(),
                                "bus",
                                !cluster_is_enabled(c) ? "standalone"
                                : cluster_bus_up(c)    ? "up"
                                                       : "down",
                                "nodes", nodes));
}
