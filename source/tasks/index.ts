// The task tree of a backup run in Xen Orchestra's log shape: live events for the daemon, the folded
// tree with XO's status rules, and the run logs persisted per runId.
export { TaskLog, Task, newTaskId, type TaskEvent, type TaskListener, type TaskData, type TaskError, type EndStatus, type TaskLogOptions } from './task.ts'
export { foldEvents, foldRun, TaskFold, markInterrupted, isSkipResult, SKIP_MESSAGES, HEALTH_CHECK_TASK, type TaskNode, type TaskStatus, type TaskLogEntry } from './fold.ts'
export { RunLogStore } from './store.ts'
