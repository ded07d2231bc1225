"""The job queue: clients (async and sync), options, streams, schedules, dependencies,
and the queue, result and scheduler actors that run jobs and make their outcomes durable."""
