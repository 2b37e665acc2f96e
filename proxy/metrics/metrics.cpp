// Prometheus counters per worker shard, rendered together for /metrics (see metrics.hpp).
#include "metrics/metrics.hpp"

#include <algorithm>
#include <cstdio>

namespace mistral_proxy::metrics {

namespace {

constexpr std::array<std::string_view, upstream_labels> upstream_names{"mistral", "mistral_eu", "codestral", "none"};
constexpr std::array<std::string_view, static_cast<std::size_t>(retry_cause::count_)> retry_cause_names{
    "status_429", "status_5xx", "connect_error"};
constexpr std::array<std::string_view, static_cast<std::size_t>(local_limit::count_)> local_limit_names{
    "requests_per_second", "tokens_per_minute", "tokens_per_month"};

std::string status_text(std::size_t index) {
    if (index < tracked_statuses.size()) {
        return std::to_string(tracked_statuses[index]);
    }
    return std::to_string(index - tracked_statuses.size() + 1) + "xx";
}

void append_number(std::string& out, double value) {
    char buffer[32];
    const int n = std::snprintf(buffer, sizeof buffer, "%.9g", value);
    out.append(buffer, static_cast<std::size_t>(n));
}

void append_header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void append_histogram(std::string& out, std::string_view name, std::string_view help,
                      const histogram::snapshot& snapshot) {
    append_header(out, name, "histogram", help);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < histogram::bounds.size(); ++i) {
        cumulative += snapshot.buckets[i];
        out.append(name).append("_bucket{le=\"");
        append_number(out, histogram::bounds[i]);
        out.append("\"} ").append(std::to_string(cumulative)).append("\n");
    }
    cumulative += snapshot.buckets.back();
    out.append(name).append("_bucket{le=\"+Inf\"} ").append(std::to_string(cumulative)).append("\n");
    out.append(name).append("_sum ");
    append_number(out, snapshot.sum_seconds);
    out.append("\n").append(name).append("_count ").append(std::to_string(snapshot.count)).append("\n");
}

std::uint64_t read(const std::atomic<std::uint64_t>& value) { return value.load(std::memory_order_relaxed); }

}  // namespace

std::size_t status_index(unsigned status) noexcept {
    for (std::size_t i = 0; i < tracked_statuses.size(); ++i) {
        if (tracked_statuses[i] == status) {
            return i;
        }
    }
    const unsigned status_class = status / 100;
    return tracked_statuses.size() + (status_class >= 1 && status_class <= 5 ? status_class - 1 : 4);
}

std::size_t rule_index(std::string_view id) noexcept {
    for (std::size_t i = 0; i + 1 < rule_ids.size(); ++i) {
        if (rule_ids[i] == id) {
            return i;
        }
    }
    return rule_ids.size() - 1;
}

void histogram::observe(std::chrono::nanoseconds value) noexcept {
    const double seconds = std::chrono::duration<double>(value).count();
    std::size_t bucket = 0;
    while (bucket < bounds.size() && seconds > bounds[bucket]) {
        ++bucket;
    }
    shard::add(buckets_[bucket]);
    shard::add(sum_ns_, static_cast<std::uint64_t>(value.count() > 0 ? value.count() : 0));
    shard::add(count_);
}

void histogram::snapshot::add(const histogram& h) noexcept {
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        buckets[i] += read(h.buckets_[i]);
    }
    count += read(h.count_);
    sum_seconds += static_cast<double>(read(h.sum_ns_)) / 1e9;
}

void shard::count_rules(std::string_view comma_separated_ids) noexcept {
    while (!comma_separated_ids.empty()) {
        const auto comma = comma_separated_ids.find(',');
        const auto id = comma_separated_ids.substr(0, comma);
        if (!id.empty()) {
            add(rules_fired[rule_index(id)]);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        comma_separated_ids.remove_prefix(comma + 1);
    }
}

shard& registry::add_shard() {
    std::lock_guard lock(mutex_);
    shards_.push_back(std::make_unique<shard>());
    return *shards_.back();
}

std::string registry::render(std::string_view extra) const {
    std::lock_guard lock(mutex_);
    std::string out;
    out.reserve(16 * 1024);

    append_header(out, "mistral_proxy_requests_total", "counter",
                  "Requests answered, by endpoint, upstream (none: answered by the proxy) and status.");
    for (std::size_t e = 0; e < static_cast<std::size_t>(endpoint_label::count_); ++e) {
        for (std::size_t u = 0; u < upstream_labels; ++u) {
            for (std::size_t s = 0; s < status_labels; ++s) {
                std::uint64_t total = 0;
                for (const auto& sh : shards_) {
                    total += read(sh->requests[e][u][s]);
                }
                if (total == 0) {
                    continue;
                }
                out.append("mistral_proxy_requests_total{endpoint=\"")
                    .append(name(static_cast<endpoint_label>(e)))
                    .append("\",upstream=\"")
                    .append(upstream_names[u])
                    .append("\",status=\"")
                    .append(status_text(s))
                    .append("\"} ")
                    .append(std::to_string(total))
                    .append("\n");
            }
        }
    }

    append_header(out, "mistral_proxy_rules_fired_total", "counter", "Requests or answers a rule changed, by rule id.");
    for (std::size_t r = 0; r < rule_ids.size(); ++r) {
        std::uint64_t total = 0;
        for (const auto& sh : shards_) {
            total += read(sh->rules_fired[r]);
        }
        out.append("mistral_proxy_rules_fired_total{rule=\"")
            .append(rule_ids[r])
            .append("\"} ")
            .append(std::to_string(total))
            .append("\n");
    }

    append_header(out, "mistral_proxy_upstream_retries_total", "counter", "Upstream calls retried, by upstream and cause.");
    for (std::size_t u = 0; u < 3; ++u) {
        for (std::size_t c = 0; c < retry_cause_names.size(); ++c) {
            std::uint64_t total = 0;
            for (const auto& sh : shards_) {
                total += read(sh->retries[u][c]);
            }
            out.append("mistral_proxy_upstream_retries_total{upstream=\"")
                .append(upstream_names[u])
                .append("\",cause=\"")
                .append(retry_cause_names[c])
                .append("\"} ")
                .append(std::to_string(total))
                .append("\n");
        }
    }

    append_header(out, "mistral_proxy_upstream_failures_total", "counter",
                  "Upstream calls that failed without an HTTP answer (connect, TLS, timeout, reset), by upstream.");
    for (std::size_t u = 0; u < 3; ++u) {
        std::uint64_t total = 0;
        for (const auto& sh : shards_) {
            total += read(sh->upstream_failures[u]);
        }
        out.append("mistral_proxy_upstream_failures_total{upstream=\"")
            .append(upstream_names[u])
            .append("\"} ")
            .append(std::to_string(total))
            .append("\n");
    }

    append_header(out, "mistral_proxy_breakers_open", "gauge",
                  "Circuit breakers (per model) not closed now, by upstream, all worker threads together.");
    for (std::size_t u = 0; u < 3; ++u) {
        std::int64_t open = 0;
        for (const auto& sh : shards_) {
            open += sh->breakers_open[u].load(std::memory_order_relaxed);
        }
        out.append("mistral_proxy_breakers_open{upstream=\"")
            .append(upstream_names[u])
            .append("\"} ")
            .append(std::to_string(open))
            .append("\n");
    }

    append_header(out, "mistral_proxy_local_rate_limited_total", "counter",
                  "Requests the proxy answered 429 itself, by the limit that was reached.");
    for (std::size_t l = 0; l < local_limit_names.size(); ++l) {
        std::uint64_t total = 0;
        for (const auto& sh : shards_) {
            total += read(sh->local_rate_limited[l]);
        }
        out.append("mistral_proxy_local_rate_limited_total{limit=\"")
            .append(local_limit_names[l])
            .append("\"} ")
            .append(std::to_string(total))
            .append("\n");
    }

    std::int64_t connections = 0;
    std::uint64_t refused = 0;
    std::uint64_t handshakes = 0;
    std::uint64_t resumed = 0;
    std::int64_t streams = 0;
    std::uint64_t received = 0;
    std::uint64_t sent = 0;
    histogram::snapshot queue_wait;
    histogram::snapshot upstream_latency;
    histogram::snapshot proxy_overhead;
    histogram::snapshot request_duration;
    for (const auto& sh : shards_) {
        connections += sh->open_connections.load(std::memory_order_relaxed);
        streams += sh->open_streams.load(std::memory_order_relaxed);
        refused += read(sh->refused_connections);
        handshakes += read(sh->tls_handshakes);
        resumed += read(sh->tls_resumed);
        received += read(sh->bytes_received);
        sent += read(sh->bytes_sent);
        queue_wait.add(sh->queue_wait);
        upstream_latency.add(sh->upstream_latency);
        proxy_overhead.add(sh->proxy_overhead);
        request_duration.add(sh->request_duration);
    }
    append_header(out, "mistral_proxy_open_connections", "gauge", "Client connections open now.");
    out.append("mistral_proxy_open_connections ").append(std::to_string(connections)).append("\n");
    append_header(out, "mistral_proxy_refused_connections_total", "counter",
                  "Client connections answered 503 and closed: server.max_connections reached or no descriptor left.");
    out.append("mistral_proxy_refused_connections_total ").append(std::to_string(refused)).append("\n");
    append_header(out, "mistral_proxy_upstream_tls_handshakes_total", "counter",
                  "TLS handshakes with upstreams (one per new upstream connection).");
    out.append("mistral_proxy_upstream_tls_handshakes_total ").append(std::to_string(handshakes)).append("\n");
    append_header(out, "mistral_proxy_upstream_tls_resumed_total", "counter",
                  "Upstream TLS handshakes that resumed an earlier session.");
    out.append("mistral_proxy_upstream_tls_resumed_total ").append(std::to_string(resumed)).append("\n");
    append_header(out, "mistral_proxy_open_streams", "gauge", "Answers being relayed to clients now.");
    out.append("mistral_proxy_open_streams ").append(std::to_string(streams)).append("\n");
    append_header(out, "mistral_proxy_request_body_bytes_total", "counter", "Request body bytes received from clients.");
    out.append("mistral_proxy_request_body_bytes_total ").append(std::to_string(received)).append("\n");
    append_header(out, "mistral_proxy_response_body_bytes_total", "counter", "Response body bytes sent to clients.");
    out.append("mistral_proxy_response_body_bytes_total ").append(std::to_string(sent)).append("\n");

    append_histogram(out, "mistral_proxy_queue_wait_seconds", "Time requests waited for their rate-limit bucket.",
                     queue_wait);
    append_histogram(out, "mistral_proxy_upstream_latency_seconds",
                     "Time from sending a request upstream to the upstream's answer headers.", upstream_latency);
    append_histogram(out, "mistral_proxy_overhead_seconds",
                     "Time spent in the proxy from a request's headers to sending it upstream (reading the body, "
                     "rewriting, routing; not queueing).",
                     proxy_overhead);
    append_histogram(out, "mistral_proxy_request_duration_seconds",
                     "Whole requests, from their headers to the last byte answered.", request_duration);
    out.append(extra);
    return out;
}

bool registry::upstream_tripped(std::size_t upstream) const {
    const std::lock_guard lock(mutex_);
    std::int64_t open = 0;
    std::int64_t last_opened = 0;
    std::int64_t last_ok = 0;
    for (const auto& sh : shards_) {
        open += sh->breakers_open[upstream].load(std::memory_order_relaxed);
        last_opened = std::max(last_opened, sh->breaker_opened_ns[upstream].load(std::memory_order_relaxed));
        last_ok = std::max(last_ok, sh->upstream_ok_ns[upstream].load(std::memory_order_relaxed));
    }
    return open > 0 && last_ok < last_opened;
}

}  // namespace mistral_proxy::metrics
