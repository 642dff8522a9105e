// Campaign shapes and wording shared by the campaign screens (`campaigns:*`, see
// src/owlat/app/campaigns.py): statuses, the progress counts, and which field of the
// editor a refusal of the server concerns.

export type CampaignStatus = "draft" | "scheduled" | "sending" | "paused" | "sent" | "cancelled";

export type Audience = { kind: "list"; listId: string } | { kind: "segment"; segmentId: string };

export type Campaign = {
  _id: string;
  name: string;
  status: CampaignStatus;
  emailTemplateId?: string;
  subject?: string;
  fromName?: string;
  fromEmail?: string;
  replyTo?: string;
  audience?: Audience;
  scheduledAt?: number;
  sentAt?: number;
  completedAt?: number;
  cancelledAt?: number;
  createdAt: number;
  updatedAt: number;
};

/** `campaigns:progress`: maintained counters, pushed as they change. */
export type Progress = {
  status: CampaignStatus;
  audience: number;
  enqueued: number;
  skipped: number;
  sent: number;
  failed: number;
  suppressed: number;
  pending: number;
  walking: boolean;
  percent: number;
  delivered: number;
  opened: number;
  humanOpened: number;
  clicked: number;
  bounced: number;
  complained: number;
};

export const STATUSES: { value: CampaignStatus; title: string; color: string }[] = [
  // dark shades: white text on them passes WCAG AA contrast
  { value: "draft", title: "Draft", color: "grey-darken-2" },
  { value: "scheduled", title: "Scheduled", color: "blue-darken-3" },
  { value: "sending", title: "Sending", color: "primary" },
  { value: "paused", title: "Paused", color: "deep-orange-darken-4" },
  { value: "sent", title: "Sent", color: "green-darken-3" },
  { value: "cancelled", title: "Cancelled", color: "red-darken-3" },
];

export function statusOf(status: CampaignStatus): { title: string; color: string } {
  return STATUSES.find((s) => s.value === status) ?? { title: status, color: "grey" };
}

/** A send is under way or can go on: the live progress is worth showing. */
export function inFlight(status: CampaignStatus): boolean {
  return status === "sending" || status === "paused";
}

export type Field = "name" | "subject" | "template" | "from" | "replyTo" | "audience";

// The server's sentences (lib/campaigns/drafts.py: the preflight and the field checks) by
// the field they concern; the first match wins.
const FIELD_OF: [RegExp, Field][] = [
  [/^Campaign name/, "name"],
  [/^subject /, "subject"],
  [/^replyTo |Reply-To/, "replyTo"],
  [/template/i, "template"],
  [/audience|Mailing list|Segment not found/i, "audience"],
  [/^fromEmail |^fromName |From address|Cannot send from|sender|domain/i, "from"],
];

/** The editor's field a refusal concerns, or null (then it is shown above the form). */
export function fieldOf(message: string): Field | null {
  return FIELD_OF.find(([pattern]) => pattern.test(message))?.[1] ?? null;
}

export function when(ms: number | undefined): string {
  return ms === undefined ? "—" : new Date(ms).toLocaleString();
}
