#pragma once
// HDR-style latency histogram: log-linear buckets over nanoseconds. Values
// below 256 ns are exact; above, each power of two is split into 128 equal
// buckets, so any recorded value is known within 1/128 (< 0.8 %) — about
// 0.4 µs at 50 µs — from 1 ns to ~18 minutes, in a fixed 80 KB array.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bench {

class histogram {
public:
    static constexpr int sub_bits = 7;  // 128 buckets per power of two
    static constexpr std::uint64_t linear_limit = std::uint64_t{1} << (sub_bits + 1);  // 256
    static constexpr int max_exponent = 40;  // 2^40 ns ≈ 18 min; larger values are clamped

    histogram() : counts_(bucket_count(), 0) {}

    void record(std::uint64_t ns) noexcept {
        ++counts_[index_of(ns)];
        ++total_;
        sum_ += static_cast<double>(ns);
        max_ = std::max(max_, ns);
        min_ = std::min(min_, ns);
    }

    void merge(const histogram& other) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            counts_[i] += other.counts_[i];
        }
        total_ += other.total_;
        sum_ += other.sum_;
        max_ = std::max(max_, other.max_);
        min_ = std::min(min_, other.min_);
    }

    std::uint64_t count() const noexcept { return total_; }
    double mean() const noexcept { return total_ == 0 ? 0.0 : sum_ / static_cast<double>(total_); }
    std::uint64_t max() const noexcept { return max_; }
    std::uint64_t min() const noexcept { return total_ == 0 ? 0 : min_; }

    // Value at quantile q in [0, 1]: the middle of the bucket that holds the
    // ceil(q * count)-th smallest value (the exact value for q == 1).
    double quantile(double q) const noexcept {
        if (total_ == 0) {
            return 0.0;
        }
        if (q >= 1.0) {
            return static_cast<double>(max_);
        }
        const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                const double low = static_cast<double>(lower_bound_of(i));
                const double high = static_cast<double>(lower_bound_of(i + 1));
                return std::min((low + high) / 2.0, static_cast<double>(max_));
            }
        }
        return static_cast<double>(max_);
    }

private:
    static constexpr std::size_t bucket_count() noexcept {
        return static_cast<std::size_t>(linear_limit) +
               static_cast<std::size_t>(max_exponent - sub_bits) * (std::size_t{1} << sub_bits);
    }

    static std::size_t index_of(std::uint64_t v) noexcept {
        if (v < linear_limit) {
            return static_cast<std::size_t>(v);
        }
        const int exponent = static_cast<int>(std::bit_width(v)) - 1;  // >= sub_bits + 1
        if (exponent >= max_exponent) {
            return bucket_count() - 1;
        }
        const int shift = exponent - sub_bits;
        const auto sub = static_cast<std::size_t>(v >> shift) - (std::size_t{1} << sub_bits);  // 0..127
        return static_cast<std::size_t>(linear_limit) +
               static_cast<std::size_t>(exponent - sub_bits - 1) * (std::size_t{1} << sub_bits) + sub;
    }

    static std::uint64_t lower_bound_of(std::size_t index) noexcept {
        if (index < linear_limit) {
            return index;
        }
        const std::size_t rest = index - static_cast<std::size_t>(linear_limit);
        const int exponent = static_cast<int>(rest >> sub_bits) + sub_bits + 1;
        const std::uint64_t sub = (rest & ((std::size_t{1} << sub_bits) - 1)) + (std::uint64_t{1} << sub_bits);
        return sub << (exponent - sub_bits);
    }

    std::vector<std::uint64_t> counts_;
    std::uint64_t total_ = 0;
    double sum_ = 0.0;
    std::uint64_t max_ = 0;
    std::uint64_t min_ = UINT64_MAX;
};

}  // namespace bench
