//! The lease scheduler: policy, capacity, rate limits, tokens, queue and the book.
