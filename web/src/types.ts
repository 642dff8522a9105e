// Shapes of the documents the screens show (the generated api types returns as `any`).

export type MailingList = {
  _id: string;
  name: string;
  description?: string;
  requireDoubleOptIn: boolean;
  isDefault?: boolean;
  memberCount: number;
  pendingCount: number;
};
