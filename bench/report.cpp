// bench_report: turns the per-run CSV rows of bench_loadgen (all rounds of
// all paths) into the figures: medians across rounds per (scenario, path),
// added latency vs the direct path, the goals, a markdown table on
// stdout, a summary CSV, and gnuplot data of latency vs throughput.
//
// Paths named NAME-tls (bench/run --tls: the same proxy with a TLS upstream)
// are held against the reference's own -tls path (nginx-tls), and get a table
// of their own next to their plain twin: CPU per request, added latency (over
// the plain baseline: the load generator speaks plain HTTP) and time to first
// event, and the ratio of the proxy to the reference, plain and TLS.
//
//   bench_report --runs runs.csv [--csv latest.csv] [--plot-data plot.dat]
//                [--cpu-scenario chat_c32] [--baseline direct] [--reference nginx]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> out;
    std::string cell;
    std::istringstream in(line);
    while (std::getline(in, cell, ',')) {
        out.push_back(cell);
    }
    if (!line.empty() && line.back() == ',') {
        out.emplace_back();
    }
    return out;
}

std::optional<double> to_number(const std::string& text) {
    if (text.empty()) {
        return std::nullopt;
    }
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size() || !std::isfinite(v)) {
            return std::nullopt;
        }
        return v;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<double> median(std::vector<double> values) {
    if (values.empty()) {
        return std::nullopt;
    }
    std::sort(values.begin(), values.end());
    const auto n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

struct group {
    std::string scenario;
    std::string path;
    std::string mode;
    int rounds = 0;
    double errors = 0;  // summed over rounds
    std::map<std::string, std::vector<double>> values;
    std::map<std::string, double> med;
    std::map<int, double> cpu_by_round;  // cpu_us_per_req of each round, for the paired ratios

    std::optional<double> get(const std::string& column) const {
        const auto it = med.find(column);
        if (it == med.end()) {
            return std::nullopt;
        }
        return it->second;
    }
};

std::string fmt(std::optional<double> v, int decimals = 1, const char* missing = "—") {
    if (!v) {
        return missing;
    }
    char out[64];
    std::snprintf(out, sizeof out, "%.*f", decimals, *v);
    return out;
}

std::string fmt_signed(std::optional<double> v, int decimals = 1) {
    if (!v) {
        return "—";
    }
    char out[64];
    std::snprintf(out, sizeof out, "%+.*f", decimals, *v);
    return out;
}

std::optional<double> minus(std::optional<double> a, std::optional<double> b) {
    if (!a || !b) {
        return std::nullopt;
    }
    return *a - *b;
}

std::optional<double> mb(std::optional<double> kb) {
    if (!kb || *kb <= 0) {
        return std::nullopt;
    }
    return *kb / 1024.0;
}

[[noreturn]] void usage(const std::string& message) {
    std::cerr << "bench_report: " << message << "\n"
              << "usage: bench_report --runs runs.csv [--csv latest.csv] [--plot-data plot.dat]\n"
                 "                    [--cpu-scenario chat_c32] [--baseline direct] [--reference nginx]\n"
                 "                    [--paths \"direct nginx mistral-proxy\"]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string runs_file, csv_file, plot_file;
    std::vector<std::string> path_order;  // --paths, else order of first appearance
    std::string cpu_scenario = "chat_c32";
    std::string baseline = "direct";
    std::string reference = "nginx";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage("missing value for " + arg);
            }
            return argv[++i];
        };
        if (arg == "--runs") {
            runs_file = value();
        } else if (arg == "--csv") {
            csv_file = value();
        } else if (arg == "--plot-data") {
            plot_file = value();
        } else if (arg == "--cpu-scenario") {
            cpu_scenario = value();
        } else if (arg == "--baseline") {
            baseline = value();
        } else if (arg == "--reference") {
            reference = value();
        } else if (arg == "--paths") {
            std::istringstream names(value());
            for (std::string name; names >> name;) {
                path_order.push_back(name);
            }
        } else {
            usage("unknown option " + arg);
        }
    }
    if (runs_file.empty()) {
        usage("--runs is required");
    }
    std::ifstream in(runs_file);
    if (!in) {
        usage("cannot read " + runs_file);
    }
    std::string line;
    if (!std::getline(in, line)) {
        usage("empty runs file");
    }
    const auto header = split(line);
    auto column_index = [&](const std::string& name) -> std::size_t {
        const auto it = std::find(header.begin(), header.end(), name);
        if (it == header.end()) {
            usage("runs file lacks column " + name);
        }
        return static_cast<std::size_t>(it - header.begin());
    };
    const auto i_path = column_index("path");
    const auto i_scenario = column_index("scenario");
    const auto i_mode = column_index("mode");
    const auto i_errors = column_index("errors");
    const auto i_round = column_index("round");
    const auto i_cpu = column_index("cpu_us_per_req");

    std::vector<std::string> scenario_order;
    std::map<std::pair<std::string, std::string>, group> groups;
    for (int n = 0; n < 1'000'000 && std::getline(in, line); ++n) {
        if (line.empty()) {
            continue;
        }
        const auto cells = split(line);
        if (cells.size() != header.size()) {
            std::cerr << "bench_report: skipping malformed row: " << line << "\n";
            continue;
        }
        const auto& scenario = cells[i_scenario];
        const auto& path = cells[i_path];
        if (std::find(scenario_order.begin(), scenario_order.end(), scenario) == scenario_order.end()) {
            scenario_order.push_back(scenario);
        }
        if (std::find(path_order.begin(), path_order.end(), path) == path_order.end()) {
            path_order.push_back(path);
        }
        auto& g = groups[{scenario, path}];
        g.scenario = scenario;
        g.path = path;
        g.mode = cells[i_mode];
        ++g.rounds;
        g.errors += to_number(cells[i_errors]).value_or(0);
        if (const auto round = to_number(cells[i_round]), cpu = to_number(cells[i_cpu]); round && cpu && *cpu > 0) {
            g.cpu_by_round[static_cast<int>(*round)] = *cpu;
        }
        for (std::size_t c = 0; c < header.size(); ++c) {
            if (c == i_path || c == i_scenario || c == i_mode) {
                continue;
            }
            if (const auto v = to_number(cells[c]); v) {
                g.values[header[c]].push_back(*v);
            }
        }
    }
    for (auto& [key, g] : groups) {
        for (const auto& [column, values] : g.values) {
            if (const auto m = median(values); m) {
                g.med[column] = *m;
            }
        }
    }
    auto find = [&](const std::string& scenario, const std::string& path) -> const group* {
        const auto it = groups.find({scenario, path});
        return it == groups.end() ? nullptr : &it->second;
    };
    auto value_of = [&](const std::string& scenario, const std::string& path, const std::string& column) {
        const auto* g = find(scenario, path);
        return g ? g->get(column) : std::nullopt;
    };
    // CPU a request of `path` over `other`'s, round by round: a round runs the
    // paths one after the other, seconds apart, so the host's slower minutes
    // (which move every path's figures by 10-40% from one round to the next
    // on a shared machine) weigh on both sides of a round's ratio. The ratio
    // of two medians can take them from different rounds. Empty when no
    // round has both.
    auto round_ratios = [&](const std::string& scenario, const std::string& path, const std::string& other) {
        std::vector<std::pair<int, double>> ratios;
        const auto* a = find(scenario, path);
        const auto* b = find(scenario, other);
        if (a == nullptr || b == nullptr) {
            return ratios;
        }
        for (const auto& [round, cpu] : a->cpu_by_round) {
            if (const auto it = b->cpu_by_round.find(round); it != b->cpu_by_round.end()) {
                ratios.emplace_back(round, cpu / it->second);
            }
        }
        return ratios;
    };
    auto paired_ratio = [&](const std::string& scenario, const std::string& path, const std::string& other) {
        std::vector<double> values;
        for (const auto& [round, ratio] : round_ratios(scenario, path, other)) {
            values.push_back(ratio);
        }
        return median(values);
    };

    // ---- table 1: every scenario -------------------------------------------
    std::cout << "### Per scenario (median of " << (groups.empty() ? 0 : groups.begin()->second.rounds)
              << " rounds; latencies in µs)\n\n"
              << "| scenario | path | RPS | p50 | p99 | p99.9 | added p50 | added p99 | TTFB p50 | TTFB p99 | gap mean | "
                 "proxy CPU µs/req (kernel) | proxy RSS MB | errors |\n"
              << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& scenario : scenario_order) {
        for (const auto& path : path_order) {
            const auto* g = find(scenario, path);
            if (!g) {
                continue;
            }
            const bool load = g->mode == "closed" || g->mode == "open";
            const bool stream = g->get("events").value_or(0) > 0;
            auto added = [&](const char* column) {
                return path == baseline || !load ? std::optional<double>{}
                                                 : minus(g->get(column), value_of(scenario, baseline, column));
            };
            std::cout << "| " << scenario << " | " << path << " | " << (load ? fmt(g->get("rps"), 0) : "—") << " | "
                      << (load ? fmt(g->get("lat_p50_us")) : "—") << " | " << (load ? fmt(g->get("lat_p99_us")) : "—")
                      << " | " << (load ? fmt(g->get("lat_p999_us")) : "—") << " | "
                      << (path == baseline ? "—" : fmt_signed(added("lat_p50_us"))) << " | "
                      << (path == baseline ? "—" : fmt_signed(added("lat_p99_us"))) << " | "
                      << (stream ? fmt(g->get("ttfb_p50_us")) : "—") << " | "
                      << (stream ? fmt(g->get("ttfb_p99_us")) : "—") << " | "
                      << (stream ? fmt(g->get("gap_mean_us")) : "—") << " | "
                      << (load ? fmt(g->get("cpu_us_per_req"), 1) + " (" + fmt(g->get("sys_us_per_req"), 1) + ")" : "—")
                      << " | " << fmt(mb(g->get("rss_max_kb")), 1)
                      << " | " << fmt(g->errors, 0) << " |\n";
        }
    }

    // ---- table 2: the goals, per path ---------------------------------------
    struct summary {
        std::optional<double> added_p50_c1, added_p99_c1, cpu, rps_max, rss_idle, rss_load, rss_streams, ttfb_added_p50,
            ttfb_added_p99, gap_added_mean, gap_added_p99;
    };
    std::string stream_scenario, hold_scenario, idle_scenario;
    for (const auto& scenario : scenario_order) {
        for (const auto& path : path_order) {
            if (const auto* g = find(scenario, path); g) {
                if (g->mode == "hold" && hold_scenario.empty()) {
                    hold_scenario = scenario;
                } else if (g->mode == "idle" && idle_scenario.empty()) {
                    idle_scenario = scenario;
                } else if (g->get("events").value_or(0) > 0 && stream_scenario.empty()) {
                    stream_scenario = scenario;
                }
            }
        }
    }
    // The time to first event is the goal's at c=1 (stream_c1, one stream at
    // a time), as the added latency is; the gaps come from the first paced
    // stream scenario (stream_c32), whose streams last long enough to have them.
    std::string ttfb_scenario = stream_scenario;
    if (std::find(scenario_order.begin(), scenario_order.end(), "stream_c1") != scenario_order.end()) {
        ttfb_scenario = "stream_c1";
    }
    std::map<std::string, summary> summaries;
    for (const auto& path : path_order) {
        summary s;
        s.added_p50_c1 = minus(value_of("chat_c1", path, "lat_p50_us"), value_of("chat_c1", baseline, "lat_p50_us"));
        s.added_p99_c1 = minus(value_of("chat_c1", path, "lat_p99_us"), value_of("chat_c1", baseline, "lat_p99_us"));
        s.cpu = value_of(cpu_scenario, path, "cpu_us_per_req");
        for (const auto& scenario : scenario_order) {
            const auto* g = find(scenario, path);
            if (!g) {
                continue;
            }
            if (g->mode == "closed" && g->get("events").value_or(0) == 0 && scenario.starts_with("chat")) {
                const auto rps = g->get("rps");
                if (rps && (!s.rps_max || *rps > *s.rps_max)) {
                    s.rps_max = rps;
                }
            }
            if (g->mode == "closed" || g->mode == "open") {
                const auto rss = g->get("rss_max_kb");
                if (rss && *rss > 0 && (!s.rss_load || *rss > *s.rss_load)) {
                    s.rss_load = rss;
                }
            }
        }
        if (!idle_scenario.empty()) {
            s.rss_idle = value_of(idle_scenario, path, "rss_max_kb");
        }
        if (!hold_scenario.empty()) {
            s.rss_streams = value_of(hold_scenario, path, "rss_max_kb");
        }
        if (!ttfb_scenario.empty()) {
            s.ttfb_added_p50 = minus(value_of(ttfb_scenario, path, "ttfb_p50_us"),
                                     value_of(ttfb_scenario, baseline, "ttfb_p50_us"));
            s.ttfb_added_p99 = minus(value_of(ttfb_scenario, path, "ttfb_p99_us"),
                                     value_of(ttfb_scenario, baseline, "ttfb_p99_us"));
        }
        if (!stream_scenario.empty()) {
            s.gap_added_mean = minus(value_of(stream_scenario, path, "gap_mean_us"),
                                     value_of(stream_scenario, baseline, "gap_mean_us"));
            s.gap_added_p99 = minus(value_of(stream_scenario, path, "gap_p99_us"),
                                    value_of(stream_scenario, baseline, "gap_p99_us"));
        }
        summaries[path] = s;
    }
    // A -tls path is compared with the reference's -tls twin when the run has one.
    auto reference_of = [&](const std::string& path) {
        if (path.ends_with("-tls") && summaries.count(reference + "-tls") != 0) {
            return reference + "-tls";
        }
        return reference;
    };
    std::cout << "\n### Per path against the goals\n\n"
              << "| path | added p50 @c1 µs | added p99 @c1 µs (≤ 50) | CPU µs/req @" << cpu_scenario
              << " (≤ " << reference << "; × paired by round) | max RPS (≥ 0.9× " << reference
              << ") | RSS idle MB | RSS load MB (≤ 16) | RSS " << (hold_scenario.empty() ? "streams" : hold_scenario)
              << " MB (≤ 64 @1000) | added TTFB p50/p99 µs @" << (ttfb_scenario.empty() ? "streams" : ttfb_scenario)
              << " (p99 ≤ 100) | added gap mean/p99 µs @" << (stream_scenario.empty() ? "streams" : stream_scenario)
              << " (≤ 2) |\n"
              << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& path : path_order) {
        if (path == baseline) {
            continue;
        }
        const auto& s = summaries[path];
        auto mark = [](std::optional<bool> ok) -> std::string {
            if (!ok) {
                return "";
            }
            return *ok ? " ✓" : " ✗";
        };
        auto check = [](std::optional<double> v, auto pred) -> std::optional<bool> {
            if (!v) {
                return std::nullopt;
            }
            return pred(*v);
        };
        const auto ref_name = reference_of(path);
        const summary* ref = summaries.count(ref_name) ? &summaries[ref_name] : nullptr;
        const bool is_ref = path == ref_name;
        std::optional<bool> cpu_ok, rps_ok;
        std::string cpu_text = fmt(s.cpu, 1);
        if (!is_ref && ref && s.cpu && ref->cpu) {
            const auto paired = paired_ratio(cpu_scenario, path, ref_name);
            cpu_ok = paired ? *paired <= 1.0 : *s.cpu <= *ref->cpu;
            if (paired) {
                cpu_text += " (" + fmt(paired, 2) + "×)";
            }
        }
        if (!is_ref && ref && s.rps_max && ref->rps_max) {
            rps_ok = *s.rps_max >= 0.9 * *ref->rps_max;
        }
        std::string rps_text = fmt(s.rps_max, 0);
        if (!is_ref && ref && s.rps_max && ref->rps_max && *ref->rps_max > 0) {
            rps_text += " (" + fmt(*s.rps_max / *ref->rps_max, 2) + "×)";
        }
        std::cout << "| " << path << " | " << fmt_signed(s.added_p50_c1) << " | " << fmt_signed(s.added_p99_c1)
                  << mark(check(s.added_p99_c1, [](double v) { return v <= 50.0; })) << " | " << cpu_text
                  << mark(cpu_ok) << " | " << rps_text << mark(rps_ok) << " | " << fmt(mb(s.rss_idle), 1) << " | "
                  << fmt(mb(s.rss_load), 1) << mark(check(mb(s.rss_load), [](double v) { return v <= 16.0; }))
                  << " | " << fmt(mb(s.rss_streams), 1)
                  << mark(check(mb(s.rss_streams), [](double v) { return v <= 64.0; })) << " | "
                  << fmt_signed(s.ttfb_added_p50) << " / " << fmt_signed(s.ttfb_added_p99)
                  << mark(check(s.ttfb_added_p99, [](double v) { return v <= 100.0; })) << " | "
                  << fmt_signed(s.gap_added_mean, 2) << " / " << fmt_signed(s.gap_added_p99, 1)
                  << mark(check(s.gap_added_mean, [](double v) { return v <= 2.0; })) << " |\n";
    }
    std::cout << "\n✓/✗: goal met or missed on this run (goals apply to mistral-proxy; " << reference
              << " is the reference";
    if (summaries.count(reference + "-tls") != 0) {
        std::cout << ", " << reference << "-tls for the -tls paths";
    }
    std::cout << "). For each goal mistral-proxy misses, README.md's \"Where the goals stand\" "
                 "gives the profile of what remains and why.\n";

    // ---- table 2: CPU a request against the reference, round by round -----------
    {
        int most_rounds = 0;
        for (const auto& [key, g] : groups) {
            most_rounds = std::max(most_rounds, g.rounds);
        }
        // The goals: at most the reference's at c=1, c=32 and c=128, at most
        // 1.5 times for embeddings; the other scenarios are shown, not judged.
        auto goal_of = [](const std::string& scenario) -> std::optional<double> {
            if (scenario == "chat_c1" || scenario == "chat_c32" || scenario == "chat_c128") {
                return 1.0;
            }
            if (scenario.starts_with("embed")) {
                return 1.5;
            }
            return std::nullopt;
        };
        std::ostringstream rows;
        for (const auto& scenario : scenario_order) {
            for (const auto& path : path_order) {
                const auto ref_name = reference_of(path);
                if (path == baseline || path == ref_name) {
                    continue;
                }
                const auto ratios = round_ratios(scenario, path, ref_name);
                if (ratios.empty()) {
                    continue;
                }
                const auto paired = paired_ratio(scenario, path, ref_name);
                const auto goal = goal_of(scenario);
                rows << "| " << scenario << " | " << path << " / " << ref_name << " | "
                     << (goal ? "≤ " + fmt(goal, 2) : std::string("—")) << " |";
                std::map<int, double> by_round(ratios.begin(), ratios.end());
                for (int round = 1; round <= most_rounds; ++round) {
                    const auto it = by_round.find(round);
                    rows << " " << (it == by_round.end() ? std::string("—") : fmt(it->second, 2)) << " |";
                }
                rows << " " << fmt(paired, 2) << "×";
                if (goal && paired) {
                    rows << (*paired <= *goal ? " ✓" : " ✗");
                }
                const auto a = value_of(scenario, path, "cpu_us_per_req");
                const auto b = value_of(scenario, ref_name, "cpu_us_per_req");
                rows << " | " << (a && b && *b > 0 ? fmt(*a / *b, 2) + "×" : std::string("—")) << " |\n";
            }
        }
        if (!rows.str().empty()) {
            std::cout << "\n### CPU a request against " << reference << ", round by round\n\n"
                      << "Each round runs the paths one after the other, so a round's ratio sets two runs seconds "
                         "apart side by side; the median of the rounds' ratios is what the goals are judged by "
                         "(the ratio of the two medians, last column, can pair a quiet round with a busy one).\n\n"
                      << "| scenario | CPU a request of | goal |";
            for (int round = 1; round <= most_rounds; ++round) {
                std::cout << " round " << round << " |";
            }
            std::cout << " median of the rounds | ratio of the medians |\n|---|---|---:|";
            for (int round = 1; round <= most_rounds; ++round) {
                std::cout << "---:|";
            }
            std::cout << "---:|---:|\n" << rows.str();
        }
    }

    // ---- table 3: TLS upstream next to plain ------------------------------------
    std::vector<std::string> tls_paths;  // plain twins of the -tls paths, reference first
    for (const auto& path : path_order) {
        if (path.ends_with("-tls")) {
            const auto plain = path.substr(0, path.size() - 4);
            if (plain == reference) {
                tls_paths.insert(tls_paths.begin(), plain);
            } else {
                tls_paths.push_back(plain);
            }
        }
    }
    if (!tls_paths.empty()) {
        std::vector<std::string> tls_scenarios;
        for (const auto& scenario : scenario_order) {
            for (const auto& plain : tls_paths) {
                const auto* g = find(scenario, plain + "-tls");
                if (g && (g->mode == "closed" || g->mode == "open") &&
                    std::find(tls_scenarios.begin(), tls_scenarios.end(), scenario) == tls_scenarios.end()) {
                    tls_scenarios.push_back(scenario);
                }
            }
        }
        auto ratio = [](std::optional<double> a, std::optional<double> b) -> std::optional<double> {
            if (!a || !b || *b <= 0) {
                return std::nullopt;
            }
            return *a / *b;
        };
        std::cout << "\n### TLS upstream next to plain (path → fake over HTTPS; client → path plain HTTP, so "
                     "\"added\" is over the plain " << baseline << " path for both)\n\n"
                  << "| scenario | path | CPU µs/req plain | CPU µs/req TLS | TLS − plain | added p50 plain / TLS | "
                     "added p99 plain / TLS | added TTFB p50 plain / TLS | added TTFB p99 plain / TLS | errors TLS |\n"
                  << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for (const auto& scenario : tls_scenarios) {
            const bool stream = [&] {
                for (const auto& plain : tls_paths) {
                    if (value_of(scenario, plain + "-tls", "events").value_or(0) > 0) {
                        return true;
                    }
                }
                return false;
            }();
            auto added = [&](const std::string& path, const char* column) {
                return minus(value_of(scenario, path, column), value_of(scenario, baseline, column));
            };
            for (const auto& plain : tls_paths) {
                const auto tls_path = plain + "-tls";
                const auto* g = find(scenario, tls_path);
                if (!g) {
                    continue;
                }
                const auto cpu_plain = value_of(scenario, plain, "cpu_us_per_req");
                const auto cpu_tls = value_of(scenario, tls_path, "cpu_us_per_req");
                std::cout << "| " << scenario << " | " << plain << " | " << fmt(cpu_plain) << " | " << fmt(cpu_tls)
                          << " | " << fmt_signed(minus(cpu_tls, cpu_plain)) << " | "
                          // A whole stream lasts seconds (its latency is known within 0.8 %, tens of ms):
                          // for streams the time to first event is the figure.
                          << (stream ? std::string("—")
                                     : fmt_signed(added(plain, "lat_p50_us")) + " / " +
                                           fmt_signed(added(tls_path, "lat_p50_us")))
                          << " | "
                          << (stream ? std::string("—")
                                     : fmt_signed(added(plain, "lat_p99_us")) + " / " +
                                           fmt_signed(added(tls_path, "lat_p99_us")))
                          << " | "
                          << (stream ? fmt_signed(added(plain, "ttfb_p50_us")) + " / " +
                                           fmt_signed(added(tls_path, "ttfb_p50_us"))
                                     : "—")
                          << " | "
                          << (stream ? fmt_signed(added(plain, "ttfb_p99_us")) + " / " +
                                           fmt_signed(added(tls_path, "ttfb_p99_us"))
                                     : "—")
                          << " | " << fmt(g->errors, 0) << " |\n";
            }
            // The ratio of each proxy to the reference, plain and TLS.
            for (const auto& plain : tls_paths) {
                if (plain == reference || !find(scenario, plain + "-tls") || !find(scenario, reference + "-tls")) {
                    continue;
                }
                const auto tls_path = plain + "-tls";
                const auto ref_tls = reference + "-tls";
                std::cout << "| " << scenario << " | **" << plain << " / " << reference << "** | "
                          << fmt(ratio(value_of(scenario, plain, "cpu_us_per_req"),
                                       value_of(scenario, reference, "cpu_us_per_req")),
                                 2)
                          << "× | "
                          << fmt(ratio(value_of(scenario, tls_path, "cpu_us_per_req"),
                                       value_of(scenario, ref_tls, "cpu_us_per_req")),
                                 2)
                          << "× | | | | | | |\n";
            }
        }
    }

    // ---- summary CSV -----------------------------------------------------------
    if (!csv_file.empty()) {
        std::ofstream out(csv_file);
        const std::vector<std::string> columns = {
            "rounds",       "concurrency",  "rate",        "requests",    "rps",        "lat_p50_us", "lat_p90_us",
            "lat_p99_us",   "lat_p999_us",  "lat_max_us",  "lat_mean_us", "ttfb_p50_us", "ttfb_p99_us", "gap_mean_us",
            "gap_p50_us",   "gap_p99_us",   "events",      "cpu_us_per_req", "rss_start_kb", "rss_max_kb", "hwm_kb",
            "fake_cpu_us_per_req", "sys_us_per_req"};
        out << "scenario,path,mode,errors";
        for (const auto& c : columns) {
            out << "," << c;
        }
        out << ",added_p50_us,added_p99_us,added_p999_us,added_ttfb_p50_us,added_ttfb_p99_us,added_gap_mean_us\n";
        for (const auto& scenario : scenario_order) {
            for (const auto& path : path_order) {
                const auto* g = find(scenario, path);
                if (!g) {
                    continue;
                }
                out << scenario << "," << path << "," << g->mode << "," << fmt(g->errors, 0, "");
                for (const auto& c : columns) {
                    out << "," << (c == "rounds" ? std::to_string(g->rounds) : fmt(g->get(c), 2, ""));
                }
                auto added = [&](const char* column) {
                    return path == baseline ? std::optional<double>{}
                                            : minus(g->get(column), value_of(scenario, baseline, column));
                };
                out << "," << fmt(added("lat_p50_us"), 2, "") << "," << fmt(added("lat_p99_us"), 2, "") << ","
                    << fmt(added("lat_p999_us"), 2, "") << "," << fmt(added("ttfb_p50_us"), 2, "") << ","
                    << fmt(added("ttfb_p99_us"), 2, "") << "," << fmt(added("gap_mean_us"), 2, "") << "\n";
            }
        }
    }

    // ---- plot data: one block per path, the closed-loop chat sweep ------------
    if (!plot_file.empty()) {
        std::ofstream out(plot_file);
        out << "# path rps p50_us p99_us p999_us concurrency; blocks separated by two blank lines (gnuplot index)\n";
        for (const auto& path : path_order) {
            out << "# " << path << "\n";
            bool any = false;
            for (const auto& scenario : scenario_order) {
                const auto* g = find(scenario, path);
                if (!g || g->mode != "closed" || !scenario.starts_with("chat") || g->get("events").value_or(0) > 0) {
                    continue;
                }
                out << path << " " << fmt(g->get("rps"), 1, "0") << " " << fmt(g->get("lat_p50_us"), 1, "0") << " "
                    << fmt(g->get("lat_p99_us"), 1, "0") << " " << fmt(g->get("lat_p999_us"), 1, "0") << " "
                    << fmt(g->get("concurrency"), 0, "0") << "\n";
                any = true;
            }
            if (!any) {
                out << path << " 0 0 0 0 0\n";
            }
            out << "\n\n";
        }
    }
    return 0;
}
