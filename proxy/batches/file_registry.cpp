#include "batches/file_registry.hpp"

namespace mistral_proxy::batches {

void file_registry::record(std::string_view file_id, file_facts facts) {
    const std::lock_guard lock(mutex_);
    if (files_.insert_or_assign(std::string(file_id), std::move(facts)).second) {
        order_.emplace_back(file_id);
    }
    while (files_.size() > capacity_ && !order_.empty()) {
        files_.erase(order_.front());
        order_.pop_front();
    }
}

std::optional<file_facts> file_registry::find(std::string_view file_id) const {
    const std::lock_guard lock(mutex_);
    const auto it = files_.find(std::string(file_id));
    if (it == files_.end()) {
        return std::nullopt;
    }
    return it->second;
}

file_registry& process_file_registry() {
    static file_registry registry;
    return registry;
}

}  // namespace mistral_proxy::batches
