"""Regional intake: applications filed at an oblast's OSS centres, their workflow and events."""
