//
// detail/thread_info_base.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
//
// Copyright (c) 2003-2022 Christopher M. Kohlhoff (chris at kohlhoff dot com)
//
// Distributed under the Boost Software License, Version 1.0. (See accompanying
// file LICENSE_1_0.txt or copy at http://www.boost.org/LICENSE_1_0.txt)
//

// mistral-proxy: Boost 1.81's detail/thread_info_base.hpp with one change,
// found before Boost's own copy on the include path of every target that
// compiles Asio (CMakeLists.txt), for Boost 1.81 only: any other version gets
// its own file unchanged (the #include_next below).
//
// Why. Asio recycles the memory of coroutine frames and handlers through a
// few slots per thread (BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE per
// purpose), each holding one freed block of at most 1020 bytes. A proxied
// request opens several coroutine frames, two of them over 1020 bytes, and at
// 32 concurrent clients per thread the frames of different sizes and
// requests outnumber the slots: a block found in a slot is too small, is
// freed, and a new one is allocated. Measured with callgrind at 32 clients:
// 4.5 memalign/free pairs per request, ~1,700 instructions, plus the cache
// misses of touching new memory each time.
//
// Changed: allocate() and deallocate() keep freed blocks in per-thread lists
// by size class (64-byte classes up to 4 KB), each list capped at 64 blocks
// and 128 KB (at least 8 blocks): what 64 concurrent requests on one thread
// free after a burst. A list never holds more than the thread once had in
// use at the same time, and release_cached() (an addition) gives it all back
// when the thread goes idle, before the proxy returns freed memory to the
// system: blocks held across the heap would keep its pages. A block's class
// is kept in the byte after the caller's size, where Asio kept its chunk
// count; 0 marks a block that is not pooled (bigger than 4 KB, aligned
// beyond the default, allocated on a thread that runs no io_context, or
// under AddressSanitizer), which is freed as before. Any thread may free a
// block another allocated: every pooled block comes from the same
// aligned_new with the default alignment. The purpose tags are kept (they
// are part of the interface) but no longer partition the memory. (The
// proxy's own proxy/http/field_pool.cpp keeps header fields the same way;
// this one lives in Asio's header because Asio's interface, its thread
// information and its purposes are what it serves.)
#include <boost/version.hpp>
#if BOOST_VERSION != 108100
#include_next <boost/asio/detail/thread_info_base.hpp>
#else

#ifndef BOOST_ASIO_DETAIL_THREAD_INFO_BASE_HPP
#define BOOST_ASIO_DETAIL_THREAD_INFO_BASE_HPP

#if defined(_MSC_VER) && (_MSC_VER >= 1200)
# pragma once
#endif // defined(_MSC_VER) && (_MSC_VER >= 1200)

#include <boost/asio/detail/config.hpp>
#include <climits>
#include <cstddef>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/noncopyable.hpp>

#if defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR) \
  && !defined(BOOST_ASIO_NO_EXCEPTIONS)
# include <exception>
# include <boost/asio/multiple_exceptions.hpp>
#endif // defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR)
       // && !defined(BOOST_ASIO_NO_EXCEPTIONS)

#include <boost/asio/detail/push_options.hpp>

namespace boost {
namespace asio {
namespace detail {

#ifndef BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE
# define BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE 2
#endif // BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE

class thread_info_base
  : private noncopyable
{
public:
  struct default_tag
  {
    enum
    {
      cache_size = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE,
      begin_mem_index = 0,
      end_mem_index = cache_size
    };
  };

  struct awaitable_frame_tag
  {
    enum
    {
      cache_size = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE,
      begin_mem_index = default_tag::end_mem_index,
      end_mem_index = begin_mem_index + cache_size
    };
  };

  struct executor_function_tag
  {
    enum
    {
      cache_size = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE,
      begin_mem_index = awaitable_frame_tag::end_mem_index,
      end_mem_index = begin_mem_index + cache_size
    };
  };

  struct cancellation_signal_tag
  {
    enum
    {
      cache_size = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE,
      begin_mem_index = executor_function_tag::end_mem_index,
      end_mem_index = begin_mem_index + cache_size
    };
  };

  struct parallel_group_tag
  {
    enum
    {
      cache_size = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE,
      begin_mem_index = cancellation_signal_tag::end_mem_index,
      end_mem_index = begin_mem_index + cache_size
    };
  };

  enum { max_mem_index = parallel_group_tag::end_mem_index };

  thread_info_base()
#if defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR) \
  && !defined(BOOST_ASIO_NO_EXCEPTIONS)
    : has_pending_exception_(0)
#endif // defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR)
       // && !defined(BOOST_ASIO_NO_EXCEPTIONS)
  {
    // Changed: the lists by size class replace Asio's slots.
    for (int i = 0; i < class_count; ++i)
    {
      free_lists_[i] = 0;
      free_counts_[i] = 0;
    }
  }

  ~thread_info_base()
  {
    release_cached(this);
  }

  static void* allocate(thread_info_base* this_thread,
      std::size_t size, std::size_t align = BOOST_ASIO_DEFAULT_ALIGN)
  {
    return allocate(default_tag(), this_thread, size, align);
  }

  static void deallocate(thread_info_base* this_thread,
      void* pointer, std::size_t size)
  {
    deallocate(default_tag(), this_thread, pointer, size);
  }

  template <typename Purpose>
  static void* allocate(Purpose, thread_info_base* this_thread,
      std::size_t size, std::size_t align = BOOST_ASIO_DEFAULT_ALIGN)
  {
    // Changed: see the top of this file.
    const std::size_t size_class = (size + class_bytes) / class_bytes;
    if (pooling && this_thread && align <= BOOST_ASIO_DEFAULT_ALIGN
        && size_class <= class_count)
    {
      free_block*& head = this_thread->free_lists_[size_class - 1];
      void* pointer = head;
      if (pointer)
      {
        head = head->next;
        --this_thread->free_counts_[size_class - 1];
      }
      else
      {
        pointer = aligned_new(BOOST_ASIO_DEFAULT_ALIGN,
            size_class * class_bytes);
      }
      static_cast<unsigned char*>(pointer)[size] =
        static_cast<unsigned char>(size_class);
      return pointer;
    }

    void* const pointer = aligned_new(align, size + 1);
    static_cast<unsigned char*>(pointer)[size] = 0;
    return pointer;
  }

  // Changed (an addition): gives back every block this thread's lists hold,
  // for a thread that has gone idle and returns its memory to the system
  // (mistral-proxy's worker_context::return_memory_when_idle).
  static void release_cached(thread_info_base* this_thread)
  {
    if (!this_thread)
      return;
    for (int i = 0; i < class_count; ++i)
    {
      while (free_block* block = this_thread->free_lists_[i])
      {
        this_thread->free_lists_[i] = block->next;
        aligned_delete(block);
      }
      this_thread->free_counts_[i] = 0;
    }
  }

  template <typename Purpose>
  static void deallocate(Purpose, thread_info_base* this_thread,
      void* pointer, std::size_t size)
  {
    // Changed: see the top of this file.
    const std::size_t size_class = static_cast<unsigned char*>(pointer)[size];
    if (this_thread && size_class != 0
        && this_thread->free_counts_[size_class - 1]
          < cached_blocks(size_class))
    {
      free_block* const block = static_cast<free_block*>(pointer);
      block->next = this_thread->free_lists_[size_class - 1];
      this_thread->free_lists_[size_class - 1] = block;
      ++this_thread->free_counts_[size_class - 1];
      return;
    }

    aligned_delete(pointer);
  }

  void capture_current_exception()
  {
#if defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR) \
  && !defined(BOOST_ASIO_NO_EXCEPTIONS)
    switch (has_pending_exception_)
    {
    case 0:
      has_pending_exception_ = 1;
      pending_exception_ = std::current_exception();
      break;
    case 1:
      has_pending_exception_ = 2;
      pending_exception_ =
        std::make_exception_ptr<multiple_exceptions>(
            multiple_exceptions(pending_exception_));
      break;
    default:
      break;
    }
#endif // defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR)
       // && !defined(BOOST_ASIO_NO_EXCEPTIONS)
  }

  void rethrow_pending_exception()
  {
#if defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR) \
  && !defined(BOOST_ASIO_NO_EXCEPTIONS)
    if (has_pending_exception_ > 0)
    {
      has_pending_exception_ = 0;
      std::exception_ptr ex(
          BOOST_ASIO_MOVE_CAST(std::exception_ptr)(
            pending_exception_));
      std::rethrow_exception(ex);
    }
#endif // defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR)
       // && !defined(BOOST_ASIO_NO_EXCEPTIONS)
  }

private:
  // Changed: freed blocks by size class (see the top of this file).
  // Under AddressSanitizer every frame goes to the heap and back, so that a
  // frame used after it ended is still caught (as proxy/http/field_pool.hpp
  // does for header fields; GCC names ASan __SANITIZE_ADDRESS__, clang
  // __has_feature).
#if defined(__SANITIZE_ADDRESS__)
  static const bool pooling = false;
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
  static const bool pooling = false;
# else
  static const bool pooling = true;
# endif
#else
  static const bool pooling = true;
#endif
  enum { class_bytes = 64, class_count = 64, cached_bytes = 128 * 1024,
    max_cached_blocks = 64, min_cached_blocks = 8 };
  struct free_block { free_block* next; };
  static std::size_t cached_blocks(std::size_t size_class)
  {
    const std::size_t blocks = cached_bytes / (size_class * class_bytes);
    return blocks < min_cached_blocks ? min_cached_blocks
      : blocks > max_cached_blocks ? max_cached_blocks : blocks;
  }
  free_block* free_lists_[class_count];
  std::size_t free_counts_[class_count];

#if defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR) \
  && !defined(BOOST_ASIO_NO_EXCEPTIONS)
  int has_pending_exception_;
  std::exception_ptr pending_exception_;
#endif // defined(BOOST_ASIO_HAS_STD_EXCEPTION_PTR)
       // && !defined(BOOST_ASIO_NO_EXCEPTIONS)
};

} // namespace detail
} // namespace asio
} // namespace boost

#include <boost/asio/detail/pop_options.hpp>

#endif // BOOST_ASIO_DETAIL_THREAD_INFO_BASE_HPP
#endif // BOOST_VERSION != 108100
