#pragma once
// Prometheus metrics. Each worker thread owns one shard and is its only writer
// (relaxed atomics, no shared cache lines between workers on the hot path);
// a scrape of /metrics sums the shards. Label sets are fixed enums, so the
// number of series is bounded whatever the clients send.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "routing/endpoints.hpp"
#include "rules/registry.hpp"

namespace mistral_proxy::metrics {

// The endpoint label of a request is its endpoint table row's (routing/endpoints.hpp).
using routing::endpoint_label;
inline std::string_view name(endpoint_label label) noexcept { return routing::endpoint_label_name(label); }

// mistral, mistral_eu, codestral (the order of routing::upstream_id), then none
// for answers the proxy gave itself before choosing an upstream.
inline constexpr std::size_t upstream_labels = 4;
inline constexpr std::size_t no_upstream = 3;

// Statuses counted on their own; any other falls into its class ("2xx", ...).
inline constexpr std::array<unsigned, 16> tracked_statuses{200, 400, 401, 403, 404, 408, 413, 415,
                                                            422, 429, 431, 500, 502, 503, 504, 499};
inline constexpr std::size_t status_labels = tracked_statuses.size() + 5;  // + 1xx..5xx classes
std::size_t status_index(unsigned status) noexcept;

// The `rule` labels: the registry's SPEC §6 ids (rules/registry.hpp, flag
// `shown`: what x-mistral-proxy-rules may name), in its order, then "other",
// which counts any id not among them.
inline constexpr auto rule_ids = [] {
    constexpr auto shown_names = rules::names_with<rules::shown>();
    std::array<std::string_view, shown_names.size() + 1> ids{};
    for (std::size_t i = 0; i < shown_names.size(); ++i) {
        ids[i] = shown_names[i];
    }
    ids[shown_names.size()] = "other";
    return ids;
}();
std::size_t rule_index(std::string_view id) noexcept;

enum class retry_cause : std::uint8_t { status_429, status_5xx, connect_error, count_ };
enum class local_limit : std::uint8_t { requests_per_second, tokens_per_minute, tokens_per_month, count_ };

class histogram {
public:
    // Upper bounds in seconds: 100 µs .. 60 s, roughly 2.5x apart.
    static constexpr std::array<double, 18> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                   1,      2.5,     5,      10,    30,     60};
    void observe(std::chrono::nanoseconds value) noexcept;

    struct snapshot {
        std::array<std::uint64_t, bounds.size() + 1> buckets{};  // not cumulative; last = +Inf
        std::uint64_t count = 0;
        double sum_seconds = 0;
        void add(const histogram& h) noexcept;
    };

private:
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
    std::atomic<std::uint64_t> count_{0};
};

// One worker's counters. Written by its worker only.
struct shard {
    std::array<std::array<std::array<std::atomic<std::uint64_t>, status_labels>, upstream_labels>,
               static_cast<std::size_t>(endpoint_label::count_)>
        requests{};
    std::array<std::atomic<std::uint64_t>, rule_ids.size()> rules_fired{};
    std::array<std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(retry_cause::count_)>, 3> retries{};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(local_limit::count_)> local_rate_limited{};
    std::array<std::atomic<std::uint64_t>, 3> upstream_failures{};  // per upstream: connect/TLS/timeout/reset
    // Circuit breakers (limits/breaker.hpp) of this worker, per upstream: how many
    // are not closed, when one last opened and when a try last succeeded
    // (nanoseconds since the epoch of limits::clock), for /metrics and /readyz.
    std::array<std::atomic<std::int64_t>, 3> breakers_open{};
    std::array<std::atomic<std::int64_t>, 3> breaker_opened_ns{};
    std::array<std::atomic<std::int64_t>, 3> upstream_ok_ns{};
    std::atomic<std::int64_t> open_connections{0};
    std::atomic<std::uint64_t> refused_connections{0};  // past server.max_connections or out of descriptors
    std::atomic<std::uint64_t> tls_handshakes{0};       // new upstream TLS connections
    std::atomic<std::uint64_t> tls_resumed{0};          // ... of which resumed a session
    std::atomic<std::int64_t> open_streams{0};
    std::atomic<std::uint64_t> bytes_received{0};
    std::atomic<std::uint64_t> bytes_sent{0};
    histogram queue_wait;
    histogram upstream_latency;   // request sent -> upstream answer headers
    histogram proxy_overhead;     // time spent in the proxy itself before sending upstream
    histogram request_duration;   // whole request, first byte of headers to last byte answered

    static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    static void add(std::atomic<std::int64_t>& gauge, std::int64_t n) noexcept {
        gauge.store(gauge.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void count_request(endpoint_label endpoint, std::size_t upstream, unsigned status) noexcept {
        add(requests[static_cast<std::size_t>(endpoint)][upstream][status_index(status)]);
    }
    void count_rules(std::string_view comma_separated_ids) noexcept;
};

class registry {
public:
    // Called at start-up, once per worker; the shard lives as long as the registry.
    shard& add_shard();

    // Prometheus text format 0.0.4. `extra` is appended verbatim (metrics owned
    // by other parts, such as the month ledger).
    std::string render(std::string_view extra = {}) const;

    // /readyz: some worker has a breaker of `upstream` open and no worker has had
    // a successful try on it since the last one opened.
    bool upstream_tripped(std::size_t upstream) const;

private:
    mutable std::mutex mutex_;  // guards shards_ (scrapes vs start-up), never the counters
    std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace mistral_proxy::metrics
