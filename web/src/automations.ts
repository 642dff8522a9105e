// Automations as the step builder edits them (lib/automations.py): triggers with their one
// parameter, step types with their configuration, and the conversion to and from what the
// server stores (a condition's branches point at steps by id here, by index there, so
// reordering keeps them on the same steps).
import { newCondition, type Group } from "./segmentFilters";

export type TriggerType = "contact_created" | "contact_updated" | "event_received" | "list_subscribed";

export const TRIGGERS: Record<TriggerType, { title: string; parameter?: string; label?: string }> = {
  contact_created: { title: "A contact is created" },
  contact_updated: { title: "A contact's field changes", parameter: "propertyKey", label: "Field or property key" },
  event_received: { title: "An event is received", parameter: "eventName", label: "Event name" },
  list_subscribed: { title: "A contact joins a list", parameter: "listId", label: "List" },
};

export const STEP_TYPES = {
  email: "Send email",
  delay: "Wait",
  condition: "Condition",
  updateContact: "Update contact",
  addToList: "Add to list",
  removeFromList: "Remove from list",
  webhook: "Send webhook",
} as const;
export type StepType = keyof typeof STEP_TYPES;

/** Where a condition's branch goes: the following step, the end, or a step by its id. */
export type Branch = "next" | "end" | string;

export type DraftStep = {
  id: string;
  type: StepType;
  templateId: string;
  subjectOverride: string;
  duration: number;
  unit: "minutes" | "hours" | "days" | "weeks";
  filters: Group;
  yes: Branch;
  no: Branch;
  contact: { firstName: string; lastName: string; language: string; timezone: string };
  listId: string;
  webhookId: string;
};

export type StoredStep = { id: string; type: string; config: Record<string, any> };

let counter = 0;

export function newStep(type: StepType): DraftStep {
  counter += 1;
  return {
    id: `new-${Date.now().toString(36)}-${counter}`,
    type,
    templateId: "",
    subjectOverride: "",
    duration: 1,
    unit: "days",
    filters: { logic: "AND", conditions: [newCondition()] },
    yes: "next",
    no: "next",
    contact: { firstName: "", lastName: "", language: "", timezone: "" },
    listId: "",
    webhookId: "",
  };
}

/** The stored steps as drafts (branch indexes become step ids). */
export function toDrafts(steps: StoredStep[]): DraftStep[] {
  const branch = (index: unknown): Branch =>
    typeof index !== "number" ? "next" : index >= steps.length ? "end" : steps[index]!.id;
  return steps.map((step) => {
    const draft = newStep(step.type as StepType);
    const config = step.config;
    return {
      ...draft,
      id: step.id,
      templateId: config.templateId ?? "",
      subjectOverride: config.subjectOverride ?? "",
      duration: config.duration ?? draft.duration,
      unit: config.unit ?? draft.unit,
      filters: config.filters ? (JSON.parse(JSON.stringify(config.filters)) as Group) : draft.filters,
      yes: branch(config.yesBranchStepIndex),
      no: branch(config.noBranchStepIndex),
      contact: { ...draft.contact, ...pick(config, Object.keys(draft.contact)) },
      listId: config.listId ?? "",
      webhookId: config.webhookId ?? "",
    };
  });
}

function pick(config: Record<string, any>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((key) => key in config).map((key) => [key, config[key]]));
}

/** The drafts as the server takes them (step ids kept: the per-step stats follow them). */
export function toStored(drafts: DraftStep[]): StoredStep[] {
  const index = (branch: Branch): number | undefined => {
    if (branch === "next") return undefined;
    if (branch === "end") return drafts.length;
    const found = drafts.findIndex((step) => step.id === branch);
    return found < 0 ? undefined : found;
  };
  return drafts.map((step) => {
    const id = step.id.startsWith("new-") ? undefined : step.id;
    return { id, type: step.type, config: configOf(step, index) } as StoredStep;
  });
}

function configOf(step: DraftStep, index: (branch: Branch) => number | undefined): Record<string, any> {
  switch (step.type) {
    case "email":
      return step.subjectOverride
        ? { templateId: step.templateId, subjectOverride: step.subjectOverride }
        : { templateId: step.templateId };
    case "delay":
      return { duration: Number(step.duration), unit: step.unit };
    case "condition": {
      const config: Record<string, any> = { filters: step.filters };
      const yes = index(step.yes);
      const no = index(step.no);
      if (yes !== undefined) config.yesBranchStepIndex = yes;
      if (no !== undefined) config.noBranchStepIndex = no;
      return config;
    }
    case "updateContact":
      return Object.fromEntries(Object.entries(step.contact).filter(([, value]) => value !== ""));
    case "addToList":
    case "removeFromList":
      return { listId: step.listId };
    case "webhook":
      return { webhookId: step.webhookId };
  }
}
