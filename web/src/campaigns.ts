// Campaign shapes and wording shared by the campaign screens (`campaigns:*`, see
// src/owlat/app/campaigns.py): statuses, the progress counts, and which field of the
// editor a preflight problem concerns (`campaigns:preflight`), the A/B test's shapes.

export type CampaignStatus =
  | "draft"
  | "scheduled"
  | "sending"
  | "paused"
  | "sent"
  | "cancelled"
  | "pending_review";

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
  archiveEnabled?: boolean;
  archiveToken?: string;
  /** why the content scan (or its review) sent it back to draft */
  contentBlockReason?: string;
  isABTest?: boolean;
  abTestConfig?: AbTestConfig;
  useRecipientTimezone?: boolean;
  scheduledHour?: number;
  scheduledMinute?: number;
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
  abTest: AbTestSummary | null;
};

export type WinnerCriteria = "open_rate" | "click_rate" | "manual";

/** `campaigns:enableAbTest`'s settings as the campaign keeps them. */
export type AbTestConfig = {
  testType: "subject" | "content";
  variantBSubject?: string;
  variantBTemplateId?: string;
  splitPercentage: number;
  winnerCriteria: WinnerCriteria;
  testDuration?: number;
};

export type VariantCounts = {
  sent: number;
  delivered: number;
  opened: number;
  humanOpened: number;
  clicked: number;
  bounced: number;
  complained: number;
  openRate: number | null;
  clickRate: number | null;
};

/** `campaigns:progress`'s `abTest` (`lib/campaigns/ab_tests.py::summary`). */
export type AbTestSummary = {
  config: AbTestConfig;
  status: "pending" | "testing" | "winner_selected";
  winner?: "A" | "B";
  winnerSelectedAt?: number;
  heldBack: number;
  variants: { A: VariantCounts; B: VariantCounts };
};

export const CRITERIA: { value: WinnerCriteria; title: string }[] = [
  { value: "open_rate", title: "Best open rate" },
  { value: "click_rate", title: "Best click rate" },
  { value: "manual", title: "I choose (manual)" },
];

export const STATUSES: { value: CampaignStatus; title: string; color: string }[] = [
  // dark shades: white text on them passes WCAG AA contrast
  { value: "draft", title: "Draft", color: "grey-darken-2" },
  { value: "scheduled", title: "Scheduled", color: "blue-darken-3" },
  { value: "pending_review", title: "Pending review", color: "purple-darken-3" },
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

export type Field = "name" | "subject" | "template" | "from" | "replyTo" | "audience" | "abTest";

/** One problem of `campaigns:preflight`: a stable code, the `campaigns:update` argument
 * (or `abTest`) it concerns, the sentence. */
export type Problem = { code: string; field: string; message: string };

const FIELD_OF: Record<string, Field> = {
  name: "name",
  subject: "subject",
  emailTemplateId: "template",
  fromEmail: "from",
  fromName: "from",
  replyTo: "replyTo",
  audience: "audience",
  abTest: "abTest",
};

/** The editor's field a problem concerns, or null (then it is shown above the form). */
export function fieldOf(problem: Problem): Field | null {
  return FIELD_OF[problem.field] ?? null;
}

export function when(ms: number | undefined): string {
  return ms === undefined ? "—" : new Date(ms).toLocaleString();
}
